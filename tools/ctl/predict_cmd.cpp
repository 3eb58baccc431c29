#include "ctl/predict_cmd.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "model/estimator.hpp"
#include "model/runtime.hpp"

namespace sitepower::ctl {
namespace {

int Usage(int code) {
  std::fprintf(
      stderr,
      "usage: sitepowerctl predict --chemistry vrla|lfp --cells N --capacity-ah AH\n"
      "         --rated-hours H [--strings S] [--soh X] [--soc X] [--temp-c T]\n"
      "         --end-v-per-cell V (--current-a A | --power-w W) [--trace FILE.csv] [--json]\n"
      "--trace: CSV with columns t_s,voltage_v,current_a,temp_c[,soc]; predicts the\n"
      "remaining runtime at the end of the trace.\n");
  return code;
}

bool ParseDouble(const std::string& s, double& out) {
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end && *end == '\0' && !s.empty();
}

struct TraceRow {
  double t_s, v, a, temp;
  double soc = -1;
};

// Reads the trace; errors name file:line.
bool ReadTrace(const std::string& path, std::vector<TraceRow>& rows, std::string& err) {
  std::ifstream in(path);
  if (!in) {
    err = path + ": cannot open";
    return false;
  }
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#' || line.rfind("t_s", 0) == 0) continue;
    std::stringstream ss(line);
    std::string cell;
    std::vector<double> v;
    while (std::getline(ss, cell, ',')) {
      double d;
      if (!ParseDouble(cell, d)) {
        err = path + ":" + std::to_string(n) + ": not a number: '" + cell + "'";
        return false;
      }
      v.push_back(d);
    }
    if (v.size() < 4) {
      err = path + ":" + std::to_string(n) + ": expected t_s,voltage_v,current_a,temp_c[,soc]";
      return false;
    }
    rows.push_back({v[0], v[1], v[2], v[3], v.size() > 4 ? v[4] : -1});
  }
  if (rows.empty()) {
    err = path + ": no samples";
    return false;
  }
  return true;
}

}  // namespace

int RunPredictCommand(int argc, char** argv) {
  std::map<std::string, std::string> opt;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json")
      json = true;
    else if (a == "--help" || a == "-h")
      return Usage(0);
    else if (a.rfind("--", 0) == 0 && i + 1 < argc)
      opt[a] = argv[++i];
    else {
      std::fprintf(stderr, "sitepowerctl predict: unexpected argument '%s'\n", a.c_str());
      return Usage(2);
    }
  }
  core::BatterySpec b;
  auto num = [&opt](const char* key, double& out, bool required) -> bool {
    auto it = opt.find(key);
    if (it == opt.end()) {
      if (required) std::fprintf(stderr, "sitepowerctl predict: %s is required\n", key);
      return !required;
    }
    if (!ParseDouble(it->second, out)) {
      std::fprintf(stderr, "sitepowerctl predict: %s: not a number: '%s'\n", key,
                   it->second.c_str());
      return false;
    }
    return true;
  };
  auto chem = core::ParseChemistry(opt.count("--chemistry") ? opt["--chemistry"] : "");
  if (!chem) {
    std::fprintf(stderr, "sitepowerctl predict: --chemistry must be vrla or lfp\n");
    return Usage(2);
  }
  b.chemistry = *chem;
  double cells = 0, strings = 1, current = 0, power = 0;
  if (!num("--cells", cells, true) || !num("--capacity-ah", b.capacity_ah, true) ||
      !num("--rated-hours", b.rated_hours, true) || !num("--strings", strings, false) ||
      !num("--soh", b.soh, false) || !num("--soc", b.soc, false) ||
      !num("--temp-c", b.temp_c, false) || !num("--end-v-per-cell", b.end_v_per_cell, true) ||
      !num("--current-a", current, false) || !num("--power-w", power, false))
    return Usage(2);
  b.cells = static_cast<int>(cells);
  b.strings = static_cast<int>(strings);
  if (b.cells < 1 || b.capacity_ah <= 0 || b.rated_hours <= 0 || b.strings < 1 || b.soh <= 0 ||
      b.soh > 1 || b.soc < 0 || b.soc > 1) {
    std::fprintf(stderr,
                 "sitepowerctl predict: values out of range (cells>=1, capacity>0, "
                 "0<soh<=1, 0<=soc<=1)\n");
    return 2;
  }
  model::Load load{power, current};
  model::RuntimeBand band;
  if (opt.count("--trace")) {
    std::vector<TraceRow> rows;
    std::string err;
    if (!ReadTrace(opt["--trace"], rows, err)) {
      std::fprintf(stderr, "sitepowerctl predict: %s\n", err.c_str());
      return 2;
    }
    // The daemon's own online estimator, fed the trace: the runtime left at
    // its last sample. A given --power-w/--current-a is the prior load.
    if (power <= 0 && current <= 0) load = model::Load{rows.front().v * rows.front().a, 0};
    model::Confidence conf;
    conf.load_sigma = 0.15;
    model::DischargeEstimator est(b, load, conf);
    for (const TraceRow& r : rows) {
      model::Sample s;
      s.t_s = r.t_s;
      s.voltage_v = r.v;
      s.current_a = r.a;
      s.temp_c = r.temp;
      if (r.soc >= 0) s.soc = r.soc > 1 ? r.soc / 100 : r.soc;
      est.Add(s);
    }
    band = est.Predict();
    if (!json)
      std::printf(
          "trace: %zu samples over %.0f min, %.1f Ah drawn, load %.0f W, spent %.0f %%, "
          "capacity x%.2f, telemetry %s\n",
          rows.size(), est.elapsed_s() / 60, est.discharged_ah(), est.load_w(), 100 * est.used(),
          est.capacity_scale(), model::TelemetryFlagsText(est.flags()).c_str());
  } else if ((power > 0) == (current > 0)) {
    std::fprintf(stderr, "sitepowerctl predict: give exactly one of --current-a or --power-w\n");
    return Usage(2);
  } else {
    band = model::PredictRuntime(b, load);
  }
  if (json) {
    std::printf("{\"runtime_min\": {\"p10\": %.1f, \"p50\": %.1f, \"p90\": %.1f}}\n", band.p10_min,
                band.p50_min, band.p90_min);
  } else {
    std::printf("runtime: P10 %.0f min, P50 %.0f min, P90 %.0f min (%s)\n", band.p10_min,
                band.p50_min, band.p90_min, band.basis.c_str());
  }
  return 0;
}

}  // namespace sitepower::ctl
