// The online estimator against the drill's battery simulator (independent
// physics: tools/sim), with telemetry noise; bad telemetry; learning.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "model/estimator.hpp"
#include "model/learning.hpp"
#include "sim/battery_sim.hpp"

namespace sitepower::model {
namespace {

double TrueRemainingMin(sim::BatterySim b) {
  double t = 0;
  while (!b.empty() && t < 72 * 3600) {
    b.Step(5, false);
    t += 5;
  }
  return t / 60.0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Case {
  core::BatterySpec truth, config;
  double load_w, configured_w;
};

Case RandomCase(std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  Case c;
  c.truth.cells = 24;
  c.truth.capacity_ah = std::vector<double>{100, 200, 300, 500}[rng() % 4];
  c.truth.strings = 1 + static_cast<int>(rng() % 2);
  c.truth.end_v_per_cell = 1.80;
  // What the daemon knows before the outage: the site survey's state of
  // health, a full (floating) battery, 25 C and the survey's load estimate.
  c.truth.soh = 0.7 + 0.3 * u(rng);
  c.config = c.truth;
  c.config.temp_c = 25;
  // The truth: that health give or take 8 %, the shelter's temperature, a
  // battery that one time in three had not recharged fully from an earlier
  // outage, and a load within +-30 % of the estimate.
  std::normal_distribution<double> n(0, 1);
  c.truth.soh = std::clamp(c.config.soh * (1 + 0.08 * n(rng)), 0.3, 1.1);
  c.truth.soc = u(rng) < 1.0 / 3 ? 0.85 + 0.15 * u(rng) : 1.0;
  c.truth.temp_c = 5 + 25 * u(rng);
  c.load_w = 800 + 2200 * u(rng);
  c.configured_w = c.load_w * (0.7 + 0.6 * u(rng));
  return c;
}

// Feeds `minutes` of noisy telemetry from `sim` into `est`.
void Discharge(sim::BatterySim& sim, DischargeEstimator& est, double& t, double minutes,
               std::mt19937& rng) {
  std::normal_distribution<double> n(0, 1);
  for (double end = t + minutes * 60; t < end && !sim.empty();) {
    sim.Step(10, false);
    t += 10;
    Sample s;
    s.t_s = t;
    s.voltage_v = sim.voltage_v() * (1 + 0.002 * n(rng));
    s.current_a = sim.current_a() * (1 + 0.01 * n(rng));
    s.temp_c = sim.temp_c() + 0.3 * n(rng);
    s.soc = std::round(sim.soc_pct() + 2 * n(rng)) / 100;  // whole percent, +-2 %
    est.Add(s);
  }
}

TEST(EstimatorTest, TenMinutesOfTelemetryHalveTheError) {
  std::mt19937 rng(20200308);
  std::vector<double> start_err, ten_err;
  int covered = 0, n = 0;
  while (n < 40) {
    Case c = RandomCase(rng);
    sim::BatterySim sim(c.truth, c.load_w);
    double true_total = TrueRemainingMin(sim);
    if (true_total < 45) continue;  // gone before ten minutes tell much
    ++n;
    Confidence conf;
    conf.soh_sigma = 0.08;
    conf.load_sigma = 0.17;
    conf.soc_sigma = 0.05;
    DischargeEstimator est(c.config, Load{c.configured_w, 0}, conf);
    double prior = est.Predict().p50_min;
    start_err.push_back(std::abs(prior - true_total) / true_total);
    double t = 0;
    Discharge(sim, est, t, 10, rng);
    double truth = TrueRemainingMin(sim);
    RuntimeBand band = est.Predict();
    ten_err.push_back(std::abs(band.p50_min - truth) / truth);
    if (band.p10_min <= truth && truth <= band.p90_min) ++covered;
    EXPECT_EQ(band.basis, "telemetry");
    EXPECT_EQ(est.flags(), kTelemetryOk);
  }
  double s = Median(start_err), e = Median(ten_err);
  std::printf(
      "median error of P50: %.1f%% at the start (nameplate, configured load), %.1f%% "
      "after 10 min of telemetry; band covers %d/%d\n",
      100 * s, 100 * e, covered, n);
  EXPECT_LE(e, 0.5 * s);
  EXPECT_GE(covered, 0.7 * n);
}

// The daemon's band after ten minutes of telemetry, on 400 drill batteries
// (the sim's rate table is none of the published ones the curve and its
// spread were fitted to). The promise is 10 % either side; the deadline side
// holds it, the other does not quite (the filter reads these batteries a
// little short after ten minutes), which the bound on it records.
TEST(EstimatorTest, BandHoldsOnBatteriesTheCurveNeverSaw) {
  std::mt19937 rng(1363);
  int n = 0, below = 0, above = 0;
  while (n < 400) {
    Case c = RandomCase(rng);
    sim::BatterySim sim(c.truth, c.load_w);
    if (TrueRemainingMin(sim) < 45) continue;
    ++n;
    Confidence conf;
    conf.soh_sigma = 0.08;
    conf.load_sigma = 0.17;
    conf.soc_sigma = 0.05;
    DischargeEstimator est(c.config, Load{c.configured_w, 0}, conf);
    double t = 0;
    Discharge(sim, est, t, 10, rng);
    const double truth = TrueRemainingMin(sim);
    const RuntimeBand band = est.Predict();
    below += truth < band.p10_min;
    above += truth > band.p90_min;
  }
  std::printf("after 10 min of telemetry, %d drill batteries: %.0f%% below P10, %.0f%% above P90\n",
              n, 100.0 * below / n, 100.0 * above / n);
  EXPECT_LE(below, 0.10 * n);  // the deadline side
  EXPECT_LE(above, 0.25 * n);
  EXPECT_GE(n - below - above, 0.70 * n);
}

TEST(EstimatorTest, DeepDischargeLearnsTheCapacity) {
  core::BatterySpec truth;
  truth.cells = 24;
  truth.capacity_ah = 200;
  truth.soh = 0.7;
  core::BatterySpec config = truth;
  config.soh = 1.0;
  std::mt19937 rng(7);
  sim::BatterySim sim(truth, 2500);
  DischargeEstimator est(config, Load{2500, 0});
  double t = 0;
  Discharge(sim, est, t, 120, rng);
  std::printf("after 120 min: spent %.2f, capacity scale %.3f +- %.3f (truth 0.70)\n", est.used(),
              est.capacity_scale(), est.capacity_scale_sigma());
  // The simulator's voltage curve is not the model's (it sags less per Ah),
  // which is what limits what the voltage can tell here: about half of the
  // nameplate's error is learned away in one outage.
  EXPECT_LT(std::abs(est.capacity_scale() - 0.7), 0.6 * std::abs(1.0 - 0.7));
  BatteryHealth learned = LearnFromOutage(PriorHealth(config), est);
  EXPECT_LT(std::abs(learned.soh - 0.7), 0.7 * std::abs(1.0 - 0.7));
  EXPECT_EQ(learned.outages, 1);
  // The next outage starts from the learned health: a better prediction.
  sim::BatterySim next(truth, 2500);
  double truth_min = TrueRemainingMin(next);
  core::BatterySpec relearned = config;
  relearned.soh = learned.soh;
  double before = std::abs(PredictRuntime(config, Load{2500, 0}).p50_min - truth_min);
  double after = std::abs(PredictRuntime(relearned, Load{2500, 0}).p50_min - truth_min);
  std::printf("next outage: error %.0f min with the nameplate, %.0f min learned (truth %.0f)\n",
              before, after, truth_min);
  EXPECT_LT(after, 0.7 * before);
  // Persisted and read back.
  BatteryHealth back;
  ASSERT_TRUE(HealthFromJson(HealthToJson(learned), &back));
  EXPECT_NEAR(back.soh, learned.soh, 1e-4);
  EXPECT_EQ(back.outages, 1);
  EXPECT_FALSE(HealthFromJson("{\"soh\":-1}", &back));
}

TEST(EstimatorTest, ShallowOutageTeachesNothing) {
  core::BatterySpec b;
  b.cells = 24;
  b.capacity_ah = 500;
  DischargeEstimator est(b, Load{1000, 0});
  std::mt19937 rng(1);
  sim::BatterySim sim(b, 1000);
  double t = 0;
  Discharge(sim, est, t, 5, rng);
  BatteryHealth prior = PriorHealth(b);
  BatteryHealth after = LearnFromOutage(prior, est);
  EXPECT_DOUBLE_EQ(after.soh, prior.soh);
  EXPECT_EQ(after.outages, 0);
}

TEST(EstimatorTest, BadTelemetryIsFlaggedAndTheBandWidens) {
  core::BatterySpec b;
  b.cells = 24;
  b.capacity_ah = 200;
  auto fresh = [&b] { return DischargeEstimator(b, Load{2000, 0}); };
  std::mt19937 rng(3);
  // Good telemetry first.
  DischargeEstimator good = fresh();
  sim::BatterySim sim(b, 2000);
  double t = 0;
  Discharge(sim, good, t, 5, rng);
  ASSERT_EQ(good.flags(), kTelemetryOk);
  RuntimeBand ok = good.Predict();
  EXPECT_EQ(ok.basis, "telemetry");

  // Frozen: the same pair for minutes.
  DischargeEstimator frozen = good;
  for (int i = 1; i <= 12; ++i) frozen.Add({t + 30.0 * i, 50.0, 41.0, 25, NAN});
  EXPECT_TRUE(frozen.flags() & kFrozen) << TelemetryFlagsText(frozen.flags());
  RuntimeBand f = frozen.Predict();
  EXPECT_NE(f.basis.find("frozen"), std::string::npos) << f.basis;
  EXPECT_GT((f.p90_min - f.p10_min) / f.p50_min, (ok.p90_min - ok.p10_min) / ok.p50_min);

  // Out of range, wrong sign, missing.
  DischargeEstimator bad = good;
  bad.Add({t + 10, 0.0, 40.0, 25, NAN});
  EXPECT_TRUE(bad.flags() & kOutOfRange);
  bad.Add({t + 20, 49.0, -40.0, 25, NAN});
  EXPECT_TRUE(bad.flags() & kWrongSign);
  bad.Add({t + 30, NAN, 40.0, 25, NAN});
  EXPECT_TRUE(bad.flags() & kMissing);
  EXPECT_NE(bad.Predict().basis.find("missing"), std::string::npos);
  // The model carries on from the last trusted state.
  EXPECT_NEAR(bad.Predict().p50_min, ok.p50_min, 0.02 * ok.p50_min);
  // Good samples again clear the flags.
  sim::BatterySim again = sim;
  double t2 = t + 30;
  Discharge(again, bad, t2, 1, rng);
  EXPECT_EQ(bad.flags(), kTelemetryOk);
  EXPECT_EQ(TelemetryFlagsText(kFrozen | kMissing), "missing, frozen");
}

}  // namespace
}  // namespace sitepower::model
