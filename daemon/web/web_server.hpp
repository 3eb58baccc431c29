// The NOC's HTTP side: the dashboard (every asset served by the daemon, no
// CDN), live state over server-sent events, /metrics, /healthz, /readyz and
// operator overrides. Beast lives only in web_server.cpp.
//
// Access: the static assets, /login, /healthz and /readyz are open; every
// other endpoint needs a NOC operator's credential, either a bearer header
// (tools) or the HttpOnly, SameSite=Strict session cookie that POST /login
// sets (browsers); never a token in a URL. /metrics follows
// WebOptions::metrics_access. Refusals: 401 (no or unknown credential), 403
// (a crew token, or a cross-origin form), 429 (peer slowed down after failed
// attempts). Every error body is JSON: {"error": "..."}.
//
// Threading: every method runs on the io_context's thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"

namespace sitepower::web {

enum class MetricsAccess {
  kLoopback,  // open to loopback peers, the NOC credential from anywhere else (default)
  kToken,     // always the NOC credential
  kOpen,      // open to all (a trusted network with its own controls)
};

struct WebOptions {
  std::string listen = "127.0.0.1:0";
  std::string tls_cert, tls_key;  // set: the port serves HTTPS only (PEM files), TLS 1.2+
  // Who a token belongs to: the NOC operator's name, or Unauthenticated /
  // PermissionDenied (a crew token) / ResourceExhausted (peer slowed down).
  // `peer` is the client's address. Empty: every protected endpoint refuses.
  std::function<core::Result<std::string>(std::string_view token, const std::string& peer)>
      authenticate;
  MetricsAccess metrics_access = MetricsAccess::kLoopback;
  std::function<std::string()> extra_metrics;  // appended to the backend's /metrics text
  std::chrono::seconds session_ttl{std::chrono::hours(12)};
  size_t max_sessions = 1024;     // the oldest session is ended beyond this
  size_t max_event_clients = 64;  // concurrent /events streams (503 beyond)
};

class WebBackend {
 public:
  virtual ~WebBackend() = default;
  virtual std::string StateJson() = 0;    // the dashboard's state document
  virtual std::string MetricsText() = 0;  // Prometheus text exposition
  virtual bool Ready() = 0;
  // POST /api/override by an authenticated operator: InvalidArgument -> 400,
  // NotFound -> 404, PermissionDenied -> 403, other errors -> 503.
  virtual core::Result<std::string> Override(const std::string& operator_name,
                                             const std::string& body) = 0;
};

// One row of the route table, for tests and docs.
struct RouteInfo {
  std::string method;  // "GET", "POST"
  std::string path;
  std::string access;  // "open" | "noc" | "metrics"
};

class WebServer {
 public:
  WebServer(boost::asio::io_context& io, WebOptions options, WebBackend& backend);
  ~WebServer();
  core::Status Start();  // binds and listens; errors name the address
  uint16_t port() const;
  // Pushes a new state to every live client. Slow clients get only the newest
  // state (coalesced), never a growing queue.
  void Publish(std::string state_json);
  void Stop();
  size_t clients() const;
  // Every route the server answers (the one table it dispatches from).
  static std::vector<RouteInfo> Routes();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace sitepower::web
