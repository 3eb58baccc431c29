// Test and bench helper: the published discharge tables of
// ../shared/data/battery-tables.json as rows to fit and predict.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "core/site.hpp"
#include "model/fit.hpp"

namespace sitepower::model::tables {

// Empty when the file is missing or malformed (`error` says which).
inline std::vector<TableRow> LoadRows(const std::string& path, std::string* error) {
  std::vector<TableRow> out;
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
      out.push_back({name, t.at("mode") == "power", row[0].get<double>(), row[1].get<double>(), b});
  }
  return out;
}

}  // namespace sitepower::model::tables
