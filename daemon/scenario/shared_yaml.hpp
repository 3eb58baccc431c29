// YAML blocks that scenarios (FORMAT.md) and the daemon config share, read alike.
#pragma once

#include <optional>
#include <string>

#include "core/geo.hpp"
#include "core/site.hpp"
#include "core/yaml_reader.hpp"

namespace sitepower::scenario {

// nullopt when the key is absent or has errors (recorded in parent's YamlErrors).
std::optional<core::BatterySpec> ReadBattery(core::YamlMap& parent, const std::string& key);

// Reads the optional `weights:` and `travel:` blocks and `hookup_min`, keeping
// the given values as defaults.
void ReadWeightsTravelHookup(core::YamlMap& root, core::TierWeights& weights,
                             core::TravelModel& travel, double& hookup_min);

}  // namespace sitepower::scenario
