// The YD/T 1363 point maps shipped in config/ydt-maps/, embedded at build
// time so the daemon works from any directory. Generated source:
// ydt_builtin_maps.cpp (embed_maps.cmake).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace sitepower::ydt1363 {

// {file name, YAML text} for every config/ydt-maps/*.yaml at build time.
const std::vector<std::pair<std::string, std::string>>& BuiltinYdtMaps();

}  // namespace sitepower::ydt1363
