// The NOC's HTTP side: the dashboard (every asset served by the daemon, no
// CDN), live state over server-sent events, /metrics, /healthz, /readyz and
// operator overrides. Beast lives only in web_server.cpp.
//
// Threading: every method runs on the io_context's thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>

#include "core/status.hpp"

namespace sitepower::web {

struct WebOptions {
  std::string listen = "127.0.0.1:0";
  std::string tls_cert, tls_key;  // set: the port serves HTTPS only (PEM files)
};

class WebBackend {
 public:
  virtual ~WebBackend() = default;
  virtual std::string StateJson() = 0;    // the dashboard's state document
  virtual std::string MetricsText() = 0;  // Prometheus text exposition
  virtual bool Ready() = 0;
  // POST /api/override: Unauthenticated -> 401, PermissionDenied -> 403,
  // InvalidArgument -> 400, NotFound -> 404, other errors -> 503.
  virtual core::Result<std::string> Override(const std::string& bearer_token,
                                             const std::string& body) = 0;
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

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace sitepower::web
