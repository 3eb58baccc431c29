// The register maps shipped in config/maps/, embedded at build time so the
// daemon works from any directory. Generated source: builtin_maps.cpp.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace sitepower::modbus {

// {file name, YAML text} for every config/maps/*.yaml at build time.
const std::vector<std::pair<std::string, std::string>>& BuiltinMaps();

}  // namespace sitepower::modbus
