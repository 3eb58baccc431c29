// Plain vocabulary shared by every module: ids, tiers, power states, batteries.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sitepower::core {

using SiteId = std::string;  // e.g. "WZ-01"; unique within a config or scenario
using CrewId = std::string;  // e.g. "A1"
using TaskId = std::string;  // e.g. "T-000042"; unique for the life of a store

enum class Tier { kVip, kKey, kStandard };
std::string_view TierName(Tier t);                // "vip" | "key" | "standard"
std::optional<Tier> ParseTier(std::string_view);  // nullopt if unknown

// Importance weights per tier (FORMAT.md defaults 100 / 10 / 1).
struct TierWeights {
  double vip = 100;
  double key = 10;
  double standard = 1;
  double Of(Tier t) const { return t == Tier::kVip ? vip : t == Tier::kKey ? key : standard; }
};

// What the daemon believes about a site's power, from telemetry.
enum class PowerState {
  kUnknown,      // never read yet
  kOnMains,      // mains present, battery floating
  kOnBattery,    // mains confirmed failed, battery discharging
  kOnGenerator,  // a generator carries the load
  kDown,         // battery at low-voltage disconnect: off air
  kStale,        // controller silent for too long: last values are not current
};
std::string_view PowerStateName(PowerState s);  // "on_mains", "on_battery", ...

enum class Chemistry { kVrla, kLfp };
std::string_view ChemistryName(Chemistry c);  // "vrla" | "lfp"
std::optional<Chemistry> ParseChemistry(std::string_view);

// One battery bank as its nameplate and site survey describe it.
struct BatterySpec {
  Chemistry chemistry = Chemistry::kVrla;
  int cells = 24;                // cells in series
  double capacity_ah = 100;      // rated capacity of one string at rated_hours
  double rated_hours = 10;       // hour rate of that rating (C10 -> 10, C20 -> 20, C8 -> 8)
  int strings = 1;               // parallel strings
  double soh = 1.0;              // state of health, fraction of rated capacity left (0..1]
  double soc = 1.0;              // state of charge at outage start (0..1]
  double temp_c = 25;            // battery temperature
  double end_v_per_cell = 1.80;  // low-voltage disconnect per cell
  // Optional datasheet table of this battery: rows of {load, minutes} at
  // table_end_v_per_cell and 25 C; load is amperes per string when
  // table_is_power is false, else watts per cell. Empty: use the generic curve.
  std::vector<std::pair<double, double>> table;
  bool table_is_power = false;
  double table_end_v_per_cell = 0;
};

}  // namespace sitepower::core
