// Dashboard files (daemon/web/assets/), embedded at build time.
#pragma once

#include <string_view>

namespace sitepower::web {

// The file's contents, or "" if there is no such asset.
std::string_view Asset(std::string_view name);

}  // namespace sitepower::web
