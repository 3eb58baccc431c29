// Bearer-token authentication for the gRPC API and the dashboard. Tokens are
// configured as SHA-256 hex digests; the clear token never touches disk.
//
// Roles: a crew token acts for its own crew; a NOC token names one operator
// (config `noc_tokens: [{name, sha256}]`), who may read everything, override
// the plan and act for any crew (audited as "noc <name> acting for <crew>").
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "core/status.hpp"

namespace sitepower::api {

struct Principal {
  enum class Role { kCrew, kNoc } role = Role::kCrew;
  std::string name;  // crew id or NOC operator name
};

std::string Sha256Hex(std::string_view token);

// "Bearer <token>" -> the token; Unauthenticated (naming the expected form) otherwise.
core::Result<std::string> BearerToken(std::string_view authorization_header);

// Checks tokens and slows down guessing. Every configured digest is compared
// in constant time (no early exit), so timing tells nothing about which or how
// much of a digest matched. A wrong token (not a missing one) is a failure,
// counted per peer (an address without its port, shared by gRPC and HTTP):
// after `free_failures` in a row, the peer is refused without a check for
// base_delay * 2^(n - free_failures - 1), capped at max_delay; a success
// clears its count. Loopback peers (this machine's tools, drills) are counted
// but not slowed unless `slow_loopback`. Thread-safe (mu_).
class Authenticator {
 public:
  using SteadyNow = std::function<std::chrono::steady_clock::time_point()>;
  struct Options {
    int free_failures = 5;
    std::chrono::milliseconds base_delay{1000};
    std::chrono::milliseconds max_delay{60000};
    size_t max_peers = 4096;  // peers remembered; the oldest quiet ones are forgotten
    bool slow_loopback = false;
    SteadyNow now;  // empty: std::chrono::steady_clock::now
  };
  Authenticator(std::map<std::string, Principal> tokens_by_sha256, Options options);
  explicit Authenticator(std::map<std::string, Principal> tokens_by_sha256)
      : Authenticator(std::move(tokens_by_sha256), Options{}) {}

  // `transport` ("grpc" | "http") labels the metrics. Errors: Unauthenticated
  // (missing, malformed or unknown token), ResourceExhausted (peer slowed
  // down; the message says for how long).
  core::Result<Principal> Check(std::string_view authorization_header, const std::string& peer,
                                const std::string& transport);
  core::Result<Principal> CheckToken(std::string_view token, const std::string& peer,
                                     const std::string& transport);

  // sitepower_auth_failures_total{transport}, sitepower_auth_throttled_total{transport},
  // sitepower_auth_peer_failures{peer} (the 20 worst), sitepower_auth_slowed_peers
  // (Prometheus text).
  std::string MetricsText() const;
  uint64_t Failures(const std::string& peer) const;  // consecutive, for tests

 private:
  struct PeerState {
    int failures = 0;
    std::chrono::steady_clock::time_point blocked_until{}, last{};
  };
  std::chrono::steady_clock::time_point Now() const;
  core::Status Refuse(const std::string& peer, const std::string& transport, core::Status why);

  const std::map<std::string, Principal> tokens_;
  const Options options_;
  mutable std::mutex mu_;  // guards everything below
  std::map<std::string, PeerState> peers_;
  std::map<std::string, uint64_t> failures_total_, throttled_total_;  // by transport
};

// "ipv4:10.0.0.5:41234" / "ipv6:[::1]:5" / "10.0.0.5:80" -> the address alone.
std::string PeerAddress(std::string_view peer);

}  // namespace sitepower::api
