// Bearer tokens are configured as SHA-256 hex digests, never in clear.
#pragma once

#include <string>

namespace sitepower::app {

// Lower-case hex SHA-256 of `token`.
std::string Sha256Hex(const std::string& token);

}  // namespace sitepower::app
