// The gRPC API: CrewService and NocService (proto/sitepower/v1), plus the
// standard health and reflection services. Handlers are thin: they
// authenticate, convert proto <-> core, call the ledger or the NOC backend,
// and map Status to grpc::Status. TLS when a certificate is configured.
//
// Access: a crew token acts only for its crew (PERMISSION_DENIED otherwise);
// a NOC token may act for any crew on CrewService (updates are audited as
// "noc <operator> acting for <crew>", so are stream subscriptions and
// location reports) and is the only one NocService accepts.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "api/auth.hpp"
#include "core/geo.hpp"
#include "core/time.hpp"
#include "sitepower/v1/noc.pb.h"
#include "store/store.hpp"
#include "tasks/task_ledger.hpp"

namespace sitepower::api {

// What the NOC service shows; the daemon's engine implements it. Called from
// gRPC threads: implementations must be thread-safe.
class NocBackend {
 public:
  virtual ~NocBackend() = default;
  virtual sitepower::v1::ListSitesResponse ListSites() = 0;
  virtual sitepower::v1::QueueSnapshot Snapshot() = 0;
};

struct ServerOptions {
  std::string listen = "127.0.0.1:0";
  std::string tls_cert, tls_key, tls_client_ca;  // files; empty cert = plaintext (TLS 1.2+)
  // Who may call: `authenticator` if set (shared with the HTTP port, so failed
  // attempts count across both), else one made from tokens_by_sha256.
  std::map<std::string, Principal> tokens_by_sha256;
  std::shared_ptr<Authenticator> authenticator;
  size_t max_stream_queue = 1024;  // per subscriber; a client that falls further behind is dropped
  int max_streams_per_crew = 4;    // concurrent SubscribeTasks per crew id (RESOURCE_EXHAUSTED)
  int max_streams_per_operator = 8;   // concurrent WatchQueue per NOC operator
  int max_request_bytes = 64 * 1024;  // larger requests: RESOURCE_EXHAUSTED
  int max_concurrent_streams = 1000;  // per HTTP/2 connection (a gateway multiplexing phones)
};

class GrpcServer {
 public:
  GrpcServer(ServerOptions options, tasks::TaskLedger& ledger, NocBackend& noc, store::Store& audit,
             const core::Clock& clock);
  ~GrpcServer();
  core::Status Start();  // errors name the address or the TLS file
  int port() const;
  void PublishQueue();  // the queue changed: push a snapshot to every watcher
  void Shutdown(std::chrono::milliseconds deadline);
  void SetLocationListener(
      std::function<void(const core::CrewId&, core::LatLon, core::TimePoint)> listener);
  int StreamClients() const;
  // sitepower_stream_clients{kind="crew"|"noc"} (Prometheus text): streams by
  // the role of the token that opened them.
  std::string MetricsText() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sitepower::api
