// sitepower-predict-bench: the runtime model against the published discharge
// tables (accuracy table, as model_test asserts it) and its cost per
// prediction, both next to the Peukert-1.25 baseline run in the same process.
//   build/bin/sitepower-predict-bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "model/estimator.hpp"
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

void PrintAccuracy() {
  std::vector<double> curve, peukert;
  int covered = 0;
  std::vector<double> width;
  for (const auto& c : Cases()) {
    model::RuntimeBand b = model::PredictRuntime(c.spec, c.AsLoad());
    curve.push_back(std::abs(b.p50_min - c.minutes) / c.minutes);
    peukert.push_back(std::abs(model::PeukertMinutes(c.spec, c.AsLoad()) - c.minutes) / c.minutes);
    covered += b.p10_min <= c.minutes && c.minutes <= b.p90_min;
    width.push_back((b.p90_min - b.p10_min) / b.p50_min);
  }
  std::printf("accuracy on %zu published rows (../shared/data/battery-tables.json)\n",
              curve.size());
  std::printf("  %-22s median %5.1f%%  P90 %5.1f%%  band coverage %3.0f%%  median width %3.0f%%\n",
              "generic curve", 100 * Quantile(curve, 0.5), 100 * Quantile(curve, 0.9),
              100.0 * covered / std::max<size_t>(1, curve.size()), 100 * Quantile(width, 0.5));
  std::printf("  %-22s median %5.1f%%  P90 %5.1f%%\n", "Peukert 1.25 (baseline)",
              100 * Quantile(peukert, 0.5), 100 * Quantile(peukert, 0.9));
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
