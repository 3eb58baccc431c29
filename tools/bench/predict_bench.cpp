// sitepower-predict-bench: the runtime model against the published discharge
// tables (in sample, and each battery held out of the fit as fit_test judges
// the band) and its cost per prediction, next to the Peukert-1.25 baseline
// and the fixed band run in the same process.
//   build/bin/sitepower-predict-bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "model/estimator.hpp"
#include "model/fit.hpp"
#include "model/runtime.hpp"
#include "model/tables.hpp"

namespace {

using namespace sitepower;

std::vector<model::TableRow>& Cases() {
  static std::vector<model::TableRow> cases = [] {
    std::string err;
    auto c = model::tables::LoadRows(SITEPOWER_SHARED_DIR "/data/battery-tables.json", &err);
    if (c.empty()) std::fprintf(stderr, "%s\n", err.c_str());
    return c;
  }();
  return cases;
}

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

// The band on rows whose battery the model never saw (fit.hpp: curve and
// error model fitted to the other batteries), next to the fixed 7.5 % band
// on the same held-out curves.
void PrintBand(const char* label, const std::vector<model::RuntimeBand>& bands) {
  model::BandCalibration c;
  for (size_t i = 0; i < bands.size(); ++i) c.Add(bands[i], Cases()[i].minutes);
  std::printf(
      "  %-26s median %5.1f%%  P90 %5.1f%%  below P10 %3.0f%%  above P90 %3.0f%%  width %3.0f%%  "
      "score %.3f\n",
      label, 100 * c.p50_error(0.5), 100 * c.p50_error(0.9), 100 * c.below(), 100 * c.above(),
      100 * c.median_width(), c.score());
}

void PrintAccuracy() {
  std::vector<double> curve, peukert;
  for (const auto& c : Cases()) {
    curve.push_back(std::abs(model::PredictRuntime(c.spec, c.AsLoad()).p50_min - c.minutes) /
                    c.minutes);
    peukert.push_back(std::abs(model::PeukertMinutes(c.spec, c.AsLoad()) - c.minutes) / c.minutes);
  }
  std::printf("accuracy on %zu published rows (../shared/data/battery-tables.json)\n",
              curve.size());
  std::printf("  %-26s median %5.1f%%  P90 %5.1f%%\n", "generic curve, in sample",
              100 * Quantile(curve, 0.5), 100 * Quantile(curve, 0.9));
  std::printf("  %-26s median %5.1f%%  P90 %5.1f%%\n", "Peukert 1.25 (baseline)",
              100 * Quantile(peukert, 0.5), 100 * Quantile(peukert, 0.9));
  if (Cases().empty()) return;
  const model::Confidence exact{0, 0, 0, 0};
  PrintBand("held out: fitted band", model::HeldOutBands(Cases(), exact));
  PrintBand("held out: fixed 7.5 % band",
            model::HeldOutBands(Cases(), exact, model::CurveErrorModel{0, 0.075, 0, 0}));
}

void BM_PeukertBaseline(benchmark::State& state) {
  const auto& cases = Cases();
  size_t i = 0;
  for (auto _ : state) {
    const auto& c = cases[i++ % cases.size()];
    benchmark::DoNotOptimize(model::PeukertMinutes(c.spec, c.AsLoad()));
  }
}
BENCHMARK(BM_PeukertBaseline);

void BM_PredictRuntime(benchmark::State& state) {
  const auto& cases = Cases();
  size_t i = 0;
  for (auto _ : state) {
    const auto& c = cases[i++ % cases.size()];
    benchmark::DoNotOptimize(model::PredictRuntime(c.spec, c.AsLoad()));
  }
}
BENCHMARK(BM_PredictRuntime);

// One telemetry sample into the online estimator plus the band the daemon
// publishes after it: the per-poll cost for a site on battery.
void BM_EstimatorSampleAndPredict(benchmark::State& state) {
  core::BatterySpec b;
  b.cells = 24;
  b.capacity_ah = 300;
  model::DischargeEstimator est(b, model::Load{2400, 0});
  double t = 0;
  for (auto _ : state) {
    t += 10;
    model::Sample s;
    s.t_s = t;
    s.voltage_v = 49.5 - t * 1e-5;
    s.current_a = 2400 / s.voltage_v;
    s.temp_c = 20;
    est.Add(s);
    benchmark::DoNotOptimize(est.Predict());
  }
}
BENCHMARK(BM_EstimatorSampleAndPredict);

}  // namespace

int main(int argc, char** argv) {
  PrintAccuracy();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
