// Test and bench helper: the published discharge tables of
// ../shared/data/battery-tables.json as prediction cases.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "core/site.hpp"
#include "model/runtime.hpp"

namespace sitepower::model::tables {

struct Case {
  std::string battery;  // model name, short
  bool power = false;   // constant power (W per cell) or constant current (A per block)
  double end_v = 0;
  double load = 0;  // A per string, or W per cell
  double minutes = 0;
  core::BatterySpec spec;  // nameplate, no table
  Load AsLoad() const { return power ? Load{load * spec.cells, 0} : Load{0, load}; }
};

// Empty when the file is missing or malformed (`error` says which).
inline std::vector<Case> LoadCases(const std::string& path, std::string* error) {
  std::vector<Case> out;
  std::ifstream in(path);
  if (!in) {
    *error = path + ": cannot open";
    return out;
  }
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_array()) {
    *error = path + ": not a JSON array";
    return out;
  }
  for (const auto& t : j) {
    core::BatterySpec b;
    b.chemistry = core::Chemistry::kVrla;  // every table there is AGM
    b.cells = t.at("cells").get<int>();
    b.capacity_ah = t.at("rated_ah").get<double>();
    b.rated_hours = 10;  // all are rated C10 to 1.80 V/cell (see rated_hour_rate)
    b.end_v_per_cell = t.at("end_v_per_cell").get<double>();
    std::string name = t.at("model").get<std::string>();
    name = name.substr(0, name.find(' '));
    for (const auto& row : t.at("rows"))
      out.push_back({name, t.at("mode") == "power", b.end_v_per_cell, row[0].get<double>(),
                     row[1].get<double>(), b});
  }
  return out;
}

}  // namespace sitepower::model::tables
