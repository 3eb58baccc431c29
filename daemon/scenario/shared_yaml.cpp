#include "scenario/shared_yaml.hpp"

namespace sitepower::scenario {

std::optional<core::BatterySpec> ReadBattery(core::YamlMap& parent, const std::string& key) {
  YAML::Node n = parent.Child(key);
  if (!n.IsDefined()) return std::nullopt;
  core::YamlErrors& errors = parent.errors();
  size_t before = errors.errors().size();
  core::YamlMap m(n, parent.PathOf(key), errors);
  if (!m.valid()) return std::nullopt;
  core::BatterySpec b;
  if (auto c = m.String("chemistry", true)) {
    if (auto chem = core::ParseChemistry(*c))
      b.chemistry = *chem;
    else
      errors.Add(m.Child("chemistry"), m.PathOf("chemistry"),
                 "expected vrla|lfp, got '" + *c + "'");
  }
  b.cells = static_cast<int>(m.Integer("cells", true, 1, 1000).value_or(b.cells));
  b.capacity_ah = m.Number("capacity_ah", true, 0.1, 100000).value_or(b.capacity_ah);
  b.rated_hours = m.Number("rated_hours", false, 0.05, 1000).value_or(b.rated_hours);
  b.strings = static_cast<int>(m.Integer("strings", false, 1, 100).value_or(b.strings));
  b.soh = m.Number("soh", false, 0.01, 1.0).value_or(b.soh);
  b.soc = m.Number("soc", false, 0.0, 1.0).value_or(b.soc);
  b.temp_c = m.Number("temp_c", false, -50, 80).value_or(b.temp_c);
  b.end_v_per_cell = m.Number("end_v_per_cell", true, 0.5, 5.0).value_or(b.end_v_per_cell);
  // sitepower extension (configs): the battery's own datasheet table,
  //   table: {end_v_per_cell: 1.80, mode: current|power, rows: [[load, minutes], ...]}
  // load in A per string (current) or W per cell (power).
  if (YAML::Node tn = m.Child("table"); tn.IsDefined()) {
    core::YamlMap t(tn, m.PathOf("table"), errors);
    if (t.valid()) {
      b.table_end_v_per_cell = t.Number("end_v_per_cell", true, 0.5, 5.0).value_or(0);
      std::string mode = t.String("mode", true).value_or("current");
      if (mode != "current" && mode != "power")
        errors.Add(t.Child("mode"), t.PathOf("mode"), "expected current|power, got '" + mode + "'");
      b.table_is_power = mode == "power";
      YAML::Node rows = t.Child("rows", true);
      if (rows.IsDefined() && (!rows.IsSequence() || rows.size() < 2)) {
        errors.Add(rows, t.PathOf("rows"), "expected at least two [load, minutes] rows");
      } else if (rows.IsDefined()) {
        for (size_t i = 0; i < rows.size(); ++i) {
          const std::string at = t.PathOf("rows") + "[" + std::to_string(i) + "]";
          double load = 0, minutes = 0;
          bool ok = rows[i].IsSequence() && rows[i].size() == 2 &&
                    YAML::convert<double>::decode(rows[i][0], load) &&
                    YAML::convert<double>::decode(rows[i][1], minutes) && load > 0 && minutes > 0;
          if (!ok)
            errors.Add(rows[i], at, "expected [load, minutes] with both > 0");
          else
            b.table.push_back({load, minutes});
        }
      }
      t.CheckNoUnknownKeys();
    }
  }
  m.CheckNoUnknownKeys();
  if (errors.errors().size() != before) return std::nullopt;
  return b;
}

void ReadWeightsTravelHookup(core::YamlMap& root, core::TierWeights& weights,
                             core::TravelModel& travel, double& hookup_min) {
  core::YamlErrors& errors = root.errors();
  if (YAML::Node n = root.Child("weights"); n.IsDefined()) {
    core::YamlMap m(n, root.PathOf("weights"), errors);
    weights.vip = m.Number("vip", false, 0).value_or(weights.vip);
    weights.key = m.Number("key", false, 0).value_or(weights.key);
    weights.standard = m.Number("standard", false, 0).value_or(weights.standard);
    m.CheckNoUnknownKeys();
  }
  if (YAML::Node n = root.Child("travel"); n.IsDefined()) {
    core::YamlMap m(n, root.PathOf("travel"), errors);
    travel.speed_kmh = m.Number("speed_kmh", false, 1, 300).value_or(travel.speed_kmh);
    travel.road_factor = m.Number("road_factor", false, 1, 10).value_or(travel.road_factor);
    m.CheckNoUnknownKeys();
  }
  hookup_min = root.Number("hookup_min", false, 0, 600).value_or(hookup_min);
}

}  // namespace sitepower::scenario
