// Reads a `battery:` block (FORMAT.md keys) from a scenario or daemon config.
#pragma once

#include <optional>
#include <string>

#include "core/site.hpp"
#include "core/yaml_reader.hpp"

namespace sitepower::scenario {

// nullopt when the key is absent or has errors (recorded in parent's YamlErrors).
std::optional<core::BatterySpec> ReadBattery(core::YamlMap& parent, const std::string& key);

}  // namespace sitepower::scenario
