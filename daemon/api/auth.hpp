// Bearer-token authentication for the gRPC API and the dashboard. Tokens are
// configured as SHA-256 hex digests; the clear token never touches disk.
#pragma once

#include <map>
#include <string>

#include "core/status.hpp"

namespace sitepower::api {

struct Principal {
  enum class Role { kCrew, kNoc } role = Role::kCrew;
  std::string name;  // crew id or NOC operator name
};

std::string Sha256Hex(const std::string& token);

// "Bearer <token>" -> the principal it belongs to; Unauthenticated otherwise.
core::Result<Principal> Authenticate(const std::string& authorization_header,
                                     const std::map<std::string, Principal>& tokens_by_sha256);

}  // namespace sitepower::api
