#include "api/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <functional>
#include <sstream>
#include <vector>

namespace sitepower::api {

std::string Sha256Hex(std::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(token.data(), token.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

core::Result<std::string> BearerToken(std::string_view header) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (header.empty()) return core::Status::Unauthenticated("missing authorization: Bearer <token>");
  if (header.substr(0, kPrefix.size()) != kPrefix || header.size() == kPrefix.size())
    return core::Status::Unauthenticated("authorization must be \"Bearer <token>\"");
  return std::string(header.substr(kPrefix.size()));
}

std::string PeerAddress(std::string_view peer) {
  for (std::string_view scheme : {"ipv4:", "ipv6:", "unix:"})
    if (peer.substr(0, scheme.size()) == scheme) peer.remove_prefix(scheme.size());
  if (!peer.empty() && peer.front() == '[') {
    auto end = peer.find(']');
    return std::string(peer.substr(1, end == std::string_view::npos ? peer.size() - 1 : end - 1));
  }
  auto colon = peer.rfind(':');
  if (colon != std::string_view::npos && peer.find(':') == colon) peer = peer.substr(0, colon);
  return std::string(peer);
}

Authenticator::Authenticator(std::map<std::string, Principal> tokens, Options options)
    : tokens_(std::move(tokens)), options_(std::move(options)) {}

std::chrono::steady_clock::time_point Authenticator::Now() const {
  return options_.now ? options_.now() : std::chrono::steady_clock::now();
}

core::Result<Principal> Authenticator::Check(std::string_view header, const std::string& peer,
                                             const std::string& transport) {
  auto token = BearerToken(header);
  if (header.empty()) return token.status();  // no credential: nothing was guessed
  if (!token.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    return Refuse(peer, transport, token.status());
  }
  return CheckToken(*token, peer, transport);
}

core::Result<Principal> Authenticator::CheckToken(std::string_view token, const std::string& peer,
                                                  const std::string& transport) {
  const auto now = Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto p = peers_.find(peer);
    if (p != peers_.end() && p->second.blocked_until > now) {
      ++throttled_total_[transport];
      auto wait = std::chrono::ceil<std::chrono::seconds>(p->second.blocked_until - now);
      return core::Status::ResourceExhausted("authentication: too many failed attempts from " +
                                             peer + "; retry in " + std::to_string(wait.count()) +
                                             " s");
    }
  }
  const std::string digest = Sha256Hex(token);
  const Principal* found = nullptr;
  for (const auto& [sha, principal] : tokens_) {
    // Every entry is compared in full; the branch below does not depend on
    // where the digests differ.
    const bool equal =
        sha.size() == digest.size() && CRYPTO_memcmp(sha.data(), digest.data(), digest.size()) == 0;
    if (equal) found = &principal;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!found || token.empty())
    return Refuse(peer, transport, core::Status::Unauthenticated("authorization: unknown token"));
  peers_.erase(peer);
  return *found;
}

core::Status Authenticator::Refuse(const std::string& peer, const std::string& transport,
                                   core::Status why) {
  const auto now = Now();
  ++failures_total_[transport];
  if (peers_.size() >= options_.max_peers && !peers_.count(peer)) {
    auto oldest = std::min_element(peers_.begin(), peers_.end(), [](const auto& a, const auto& b) {
      return a.second.last < b.second.last;
    });
    peers_.erase(oldest);
  }
  PeerState& p = peers_[peer];
  p.last = now;
  const bool loopback = peer.rfind("127.", 0) == 0 || peer == "::1" || peer == "localhost";
  if (++p.failures > options_.free_failures && (options_.slow_loopback || !loopback)) {
    const int over = std::min(p.failures - options_.free_failures - 1, 20);
    auto delay = std::min<std::chrono::milliseconds>(options_.base_delay * (int64_t{1} << over),
                                                     options_.max_delay);
    p.blocked_until = now + delay;
  }
  return why;
}

uint64_t Authenticator::Failures(const std::string& peer) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto p = peers_.find(peer);
  return p == peers_.end() ? 0 : static_cast<uint64_t>(p->second.failures);
}

std::string Authenticator::MetricsText() const {
  const auto now = Now();
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream m;
  m << "# HELP sitepower_auth_failures_total Failed authentications (no, malformed or unknown "
       "token).\n# TYPE sitepower_auth_failures_total counter\n";
  for (const char* t : {"grpc", "http"}) {
    auto it = failures_total_.find(t);
    m << "sitepower_auth_failures_total{transport=\"" << t << "\"} "
      << (it == failures_total_.end() ? 0 : it->second) << "\n";
  }
  m << "# HELP sitepower_auth_throttled_total Requests refused unchecked because their peer "
       "failed too often.\n# TYPE sitepower_auth_throttled_total counter\n";
  for (const char* t : {"grpc", "http"}) {
    auto it = throttled_total_.find(t);
    m << "sitepower_auth_throttled_total{transport=\"" << t << "\"} "
      << (it == throttled_total_.end() ? 0 : it->second) << "\n";
  }
  size_t slowed = 0;
  for (const auto& [peer, p] : peers_)
    if (p.blocked_until > now) ++slowed;
  // The peers with the most consecutive failures, at most kMaxPeersShown
  // (bounded label values), so a guessing peer can be seen and blocked.
  constexpr size_t kMaxPeersShown = 20;
  std::vector<std::pair<int, std::string>> worst;
  for (const auto& [peer, p] : peers_)
    if (p.failures > 0) worst.emplace_back(p.failures, peer);
  std::sort(worst.begin(), worst.end(), std::greater<>());
  if (worst.size() > kMaxPeersShown) worst.resize(kMaxPeersShown);
  m << "# HELP sitepower_auth_peer_failures Consecutive failed authentications of the peers that "
       "failed most (at most 20).\n# TYPE sitepower_auth_peer_failures gauge\n";
  for (const auto& [n, peer] : worst) {
    std::string label;  // Prometheus label escaping: backslash, quote, newline
    for (char c : peer)
      label += c == '\\' ? "\\\\" : c == '"' ? "\\\"" : c == '\n' ? "\\n" : std::string(1, c);
    m << "sitepower_auth_peer_failures{peer=\"" << label << "\"} " << n << "\n";
  }
  m << "# HELP sitepower_auth_slowed_peers Peers currently slowed down after failed "
       "authentications.\n# TYPE sitepower_auth_slowed_peers gauge\nsitepower_auth_slowed_peers "
    << slowed << "\n";
  return m.str();
}

}  // namespace sitepower::api
