#include "api/grpc_server.hpp"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <fstream>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>

#include "api/convert.hpp"
#include "sitepower/v1/crew.grpc.pb.h"
#include "sitepower/v1/noc.grpc.pb.h"

namespace sitepower::api {

namespace v1 = sitepower::v1;

namespace {

grpc::Status ToGrpc(const core::Status& s) {
  using C = core::Status::Code;
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  switch (s.code()) {
    case C::kOk:
      return grpc::Status::OK;
    case C::kInvalidArgument:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case C::kNotFound:
      code = grpc::StatusCode::NOT_FOUND;
      break;
    case C::kAlreadyExists:
      code = grpc::StatusCode::ALREADY_EXISTS;
      break;
    case C::kFailedPrecondition:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case C::kPermissionDenied:
      code = grpc::StatusCode::PERMISSION_DENIED;
      break;
    case C::kUnauthenticated:
      code = grpc::StatusCode::UNAUTHENTICATED;
      break;
    case C::kResourceExhausted:
      code = grpc::StatusCode::RESOURCE_EXHAUSTED;
      break;
    case C::kDeadlineExceeded:
      code = grpc::StatusCode::DEADLINE_EXCEEDED;
      break;
    case C::kUnavailable:
      code = grpc::StatusCode::UNAVAILABLE;
      break;
    case C::kInternal:
      code = grpc::StatusCode::INTERNAL;
      break;
  }
  return grpc::Status(code, s.message());
}

std::string AuthHeader(const grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

std::string ReadFile(const std::string& path, core::Status& st) {
  std::ifstream in(path);
  if (!in) {
    st = core::Status::NotFound("tls: cannot read " + path);
    return "";
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// Shared state every service and stream sees.
struct GrpcServer::Impl {
  ServerOptions options;
  tasks::TaskLedger& ledger;
  NocBackend& noc;
  store::Store& audit;
  const core::Clock& clock;
  std::shared_ptr<Authenticator> auth;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::atomic<int> crew_kind_streams{0}, noc_kind_streams{0};  // by the opener's role
  std::mutex streams_mu;                                       // guards the two maps below
  std::map<std::string, int> streams_by_crew, watches_by_operator;
  std::mutex location_mu;  // guards on_location
  std::function<void(const core::CrewId&, core::LatLon, core::TimePoint)> on_location;

  class QueueWatch;
  std::mutex watchers_mu;  // guards watchers
  std::set<QueueWatch*> watchers;

  class CrewServiceImpl;
  class NocServiceImpl;
  std::unique_ptr<CrewServiceImpl> crew_service;
  std::unique_ptr<NocServiceImpl> noc_service;

  Impl(ServerOptions o, tasks::TaskLedger& l, NocBackend& n, store::Store& a, const core::Clock& c)
      : options(std::move(o)),
        ledger(l),
        noc(n),
        audit(a),
        clock(c),
        auth(options.authenticator ? options.authenticator
                                   : std::make_shared<Authenticator>(options.tokens_by_sha256)) {}

  core::Result<Principal> Auth(const grpc::CallbackServerContext* ctx) const {
    return auth->Check(AuthHeader(ctx), PeerAddress(ctx->peer()), "grpc");
  }
  // A crew acts only for itself; the NOC may act for any crew (crew.proto).
  core::Status MayActFor(const Principal& p, const std::string& crew_id) const {
    if (crew_id.empty()) return core::Status::InvalidArgument("crew_id: required");
    if (p.role == Principal::Role::kNoc || p.name == crew_id) return core::Status::Ok();
    return core::Status::PermissionDenied("crew " + p.name + " may not act for crew " + crew_id);
  }
  // Records what a NOC operator did in a crew's name (updates are audited by the ledger).
  void AuditActingFor(const Principal& p, const std::string& crew, const std::string& action,
                      const std::string& detail) {
    if (p.role != Principal::Role::kNoc) return;
    store::AuditRecord r{core::Millis(clock.Now().time_since_epoch()).count(), p.name, "noc",
                         action, "noc " + p.name + " acting for " + crew + ": " + detail};
    (void)audit.AppendAudit(r);  // a read-only act; a failed audit write is not the caller's
  }
  // Counts a stream against `limits[key]`; false (nothing counted) when at `max`.
  bool OpenStream(std::map<std::string, int>& limits, const std::string& key, int max,
                  Principal::Role opener) {
    std::lock_guard<std::mutex> lock(streams_mu);
    int& n = limits[key];
    if (n >= max) return false;
    ++n;
    ++(opener == Principal::Role::kNoc ? noc_kind_streams : crew_kind_streams);
    return true;
  }
  void CloseStream(std::map<std::string, int>& limits, const std::string& key,
                   Principal::Role opener) {
    std::lock_guard<std::mutex> lock(streams_mu);
    if (--limits[key] <= 0) limits.erase(key);
    --(opener == Principal::Role::kNoc ? noc_kind_streams : crew_kind_streams);
  }
};

// One crew's task stream: replays what the client missed, then live events,
// one write outstanding at a time, bounded queue. The ledger listener holds
// only a shared State, so a late event after the stream ended is dropped safely.
class TaskStream final : public grpc::ServerWriteReactor<v1::TaskEvent> {
 public:
  struct State {
    std::mutex mu;                 // guards everything below
    TaskStream* stream = nullptr;  // null once the stream is done
    std::deque<v1::TaskEvent> queue;
    bool writing = false;
    bool finished = false;
    uint64_t last_seq = 0;  // highest seq queued: never send a seq twice or out of order
    // While the backlog is replayed, live events wait here: one that overtook
    // the replay would otherwise raise last_seq and the replay's older events
    // would be dropped (a gap after a restart, when crews reconnect while the
    // daemon re-plans).
    bool replaying = true;
    std::vector<v1::TaskEvent> held;
  };

  TaskStream(GrpcServer::Impl& impl, const grpc::CallbackServerContext* ctx,
             const v1::SubscribeTasksRequest* req)
      : impl_(impl), state_(std::make_shared<State>()) {
    auto who = impl_.Auth(ctx);
    core::Status st = who.ok() ? impl_.MayActFor(*who, req->crew_id()) : who.status();
    if (st.ok() && !impl_.OpenStream(impl_.streams_by_crew, req->crew_id(),
                                     impl_.options.max_streams_per_crew, who->role))
      st = core::Status::ResourceExhausted("crew_id: crew " + req->crew_id() + " already has " +
                                           std::to_string(impl_.options.max_streams_per_crew) +
                                           " open streams");
    if (!st.ok()) {
      Finish(ToGrpc(st));
      state_->finished = true;
      return;
    }
    crew_ = req->crew_id();
    opener_ = who->role;
    impl_.AuditActingFor(*who, crew_, "stream.subscribe",
                         "task stream after seq " + std::to_string(req->after_seq()));
    state_->stream = this;
    state_->last_seq = req->after_seq();
    counted_ = true;
    // Subscribe first, then replay: an event committed in between is in both
    // and the seq check keeps exactly one copy, in order.
    std::weak_ptr<State> weak = state_;
    const std::string crew = crew_;
    const size_t limit = impl_.options.max_stream_queue;
    sub_ = impl_.ledger.Subscribe([weak, crew, limit](const tasks::TaskEvent& e) {
      if (e.crew != crew) return;
      if (auto s = weak.lock()) Push(*s, ToProto(e), limit, /*live=*/true);
    });
    for (const auto& e : impl_.ledger.EventsAfter(crew_, req->after_seq()))
      Push(*state_, ToProto(e), std::numeric_limits<size_t>::max(), /*live=*/false);
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->replaying = false;
    std::sort(state_->held.begin(), state_->held.end(),
              [](const v1::TaskEvent& a, const v1::TaskEvent& b) { return a.seq() < b.seq(); });
    // Live events held back during the replay are part of the catch-up: the
    // slow-client limit is for events the client does not read later on.
    for (auto& e : state_->held)
      PushLocked(*state_, std::move(e), std::numeric_limits<size_t>::max());
    state_->held.clear();
  }

  static void Push(State& s, v1::TaskEvent ev, size_t limit, bool live) {
    std::lock_guard<std::mutex> lock(s.mu);
    if (live && s.replaying) {
      s.held.push_back(std::move(ev));
      return;
    }
    PushLocked(s, std::move(ev), limit);
  }

  static void PushLocked(State& s, v1::TaskEvent ev, size_t limit) {
    if (!s.stream || s.finished || ev.seq() <= s.last_seq) return;
    if (s.queue.size() >= limit) {
      s.finished = true;
      s.stream->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                    "client too slow: reconnect with after_seq to resume"));
      return;
    }
    s.last_seq = ev.seq();
    s.queue.push_back(std::move(ev));
    if (!s.writing) {
      s.writing = true;
      s.stream->StartWrite(&s.queue.front());
    }
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->queue.pop_front();
    state_->writing = false;
    if (!ok) {
      if (!state_->finished) {
        state_->finished = true;
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      }
      return;
    }
    if (!state_->queue.empty() && !state_->finished) {
      state_->writing = true;
      StartWrite(&state_->queue.front());
    }
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->finished) {
      state_->finished = true;
      Finish(grpc::Status::CANCELLED);
    }
  }

  void OnDone() override {
    if (sub_) impl_.ledger.Unsubscribe(sub_);
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->stream = nullptr;
    }
    if (counted_) impl_.CloseStream(impl_.streams_by_crew, crew_, opener_);
    delete this;
  }

 private:
  GrpcServer::Impl& impl_;
  std::shared_ptr<State> state_;
  std::string crew_;
  Principal::Role opener_ = Principal::Role::kCrew;
  uint64_t sub_ = 0;
  bool counted_ = false;
};

class GrpcServer::Impl::CrewServiceImpl final : public v1::CrewService::CallbackService {
 public:
  explicit CrewServiceImpl(Impl& impl) : impl_(impl) {}

  grpc::ServerWriteReactor<v1::TaskEvent>* SubscribeTasks(
      grpc::CallbackServerContext* ctx, const v1::SubscribeTasksRequest* req) override {
    return new TaskStream(impl_, ctx, req);
  }

  grpc::ServerUnaryReactor* ListMyTasks(grpc::CallbackServerContext* ctx,
                                        const v1::ListMyTasksRequest* req,
                                        v1::ListMyTasksResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    auto who = impl_.Auth(ctx);
    core::Status st = who.ok() ? impl_.MayActFor(*who, req->crew_id()) : who.status();
    if (st.ok()) {
      for (const auto& t : impl_.ledger.CrewTasks(req->crew_id())) *resp->add_tasks() = ToProto(t);
      resp->set_last_seq(impl_.ledger.LastSeq(req->crew_id()));
    }
    reactor->Finish(ToGrpc(st));
    return reactor;
  }

  grpc::ServerUnaryReactor* UpdateTask(grpc::CallbackServerContext* ctx,
                                       const v1::UpdateTaskRequest* req,
                                       v1::UpdateTaskResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    auto who = impl_.Auth(ctx);
    core::Status st = who.ok() ? impl_.MayActFor(*who, req->crew_id()) : who.status();
    auto to = FromProto(req->status());
    if (st.ok() && !to)
      st = core::Status::InvalidArgument(
          "status: must be ACCEPTED, EN_ROUTE, ON_SITE, GENERATOR_RUNNING or DECLINED");
    if (st.ok()) {
      tasks::Actor by{
          who->role == Principal::Role::kNoc ? tasks::Actor::Role::kNoc : tasks::Actor::Role::kCrew,
          who->name};
      auto r = impl_.ledger.Update(req->crew_id(), req->task_id(), *to, req->reason(),
                                   req->idempotency_key(), by);
      if (r.ok()) {
        *resp->mutable_task() = ToProto(r->task);
        resp->set_duplicate(r->duplicate);
      } else {
        st = r.status();
      }
    }
    reactor->Finish(ToGrpc(st));
    return reactor;
  }

  grpc::ServerUnaryReactor* ReportLocation(grpc::CallbackServerContext* ctx,
                                           const v1::ReportLocationRequest* req,
                                           v1::ReportLocationResponse*) override {
    auto* reactor = ctx->DefaultReactor();
    auto who = impl_.Auth(ctx);
    core::Status st = who.ok() ? impl_.MayActFor(*who, req->crew_id()) : who.status();
    const auto& loc = req->location();
    if (st.ok() && (loc.lat() < -90 || loc.lat() > 90 || loc.lon() < -180 || loc.lon() > 180))
      st = core::Status::InvalidArgument("location: coordinates out of range");
    if (st.ok()) {
      core::TimePoint at =
          req->at_unix_ms() ? core::TimePoint(core::Millis(req->at_unix_ms())) : impl_.clock.Now();
      impl_.AuditActingFor(*who, req->crew_id(), "crew.location",
                           std::to_string(loc.lat()) + "," + std::to_string(loc.lon()));
      std::lock_guard<std::mutex> lock(impl_.location_mu);
      if (impl_.on_location) impl_.on_location(req->crew_id(), {loc.lat(), loc.lon()}, at);
    }
    reactor->Finish(ToGrpc(st));
    return reactor;
  }

 private:
  Impl& impl_;
};

// A NOC client's queue stream: the snapshot now, then the newest snapshot
// after each change (intermediate ones are coalesced for slow clients).
class GrpcServer::Impl::QueueWatch final : public grpc::ServerWriteReactor<v1::QueueSnapshot> {
 public:
  QueueWatch(Impl& impl, const grpc::CallbackServerContext* ctx) : impl_(impl) {
    auto who = impl_.Auth(ctx);
    core::Status st = who.ok()
                          ? (who->role == Principal::Role::kNoc
                                 ? core::Status::Ok()
                                 : core::Status::PermissionDenied("the queue needs a NOC token"))
                          : who.status();
    if (st.ok() && !impl_.OpenStream(impl_.watches_by_operator, who->name,
                                     impl_.options.max_streams_per_operator, who->role))
      st = core::Status::ResourceExhausted("operator " + who->name + " already has " +
                                           std::to_string(impl_.options.max_streams_per_operator) +
                                           " queue watches open");
    if (!st.ok()) {
      finished_ = true;
      Finish(ToGrpc(st));
      return;
    }
    operator_ = who->name;
    {
      std::lock_guard<std::mutex> lock(impl_.watchers_mu);
      impl_.watchers.insert(this);
    }
    registered_ = true;
    Changed();
  }
  void Changed() {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    if (writing_) {
      dirty_ = true;
      return;
    }
    current_ = impl_.noc.Snapshot();
    writing_ = true;
    StartWrite(&current_);
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      if (!finished_) {
        finished_ = true;
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      }
      return;
    }
    if (dirty_ && !finished_) {
      dirty_ = false;
      current_ = impl_.noc.Snapshot();
      writing_ = true;
      StartWrite(&current_);
    }
  }
  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!finished_) {
      finished_ = true;
      Finish(grpc::Status::CANCELLED);
    }
  }
  void OnDone() override {
    if (registered_) {
      {
        std::lock_guard<std::mutex> lock(impl_.watchers_mu);
        impl_.watchers.erase(this);
      }
      impl_.CloseStream(impl_.watches_by_operator, operator_, Principal::Role::kNoc);
    }
    delete this;
  }

 private:
  Impl& impl_;
  std::string operator_;
  std::mutex mu_;  // guards the fields below
  v1::QueueSnapshot current_;
  bool writing_ = false, dirty_ = false, finished_ = false, registered_ = false;
};

class GrpcServer::Impl::NocServiceImpl final : public v1::NocService::CallbackService {
 public:
  explicit NocServiceImpl(Impl& impl) : impl_(impl) {}
  grpc::ServerUnaryReactor* ListSites(grpc::CallbackServerContext* ctx, const v1::ListSitesRequest*,
                                      v1::ListSitesResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    auto who = impl_.Auth(ctx);
    core::Status st = who.ok()
                          ? (who->role == Principal::Role::kNoc
                                 ? core::Status::Ok()
                                 : core::Status::PermissionDenied("ListSites needs a NOC token"))
                          : who.status();
    if (st.ok()) *resp = impl_.noc.ListSites();
    reactor->Finish(ToGrpc(st));
    return reactor;
  }
  grpc::ServerWriteReactor<v1::QueueSnapshot>* WatchQueue(grpc::CallbackServerContext* ctx,
                                                          const v1::WatchQueueRequest*) override {
    return new QueueWatch(impl_, ctx);
  }

 private:
  Impl& impl_;
};

GrpcServer::GrpcServer(ServerOptions options, tasks::TaskLedger& ledger, NocBackend& noc,
                       store::Store& audit, const core::Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(options), ledger, noc, audit, clock)) {}

GrpcServer::~GrpcServer() { Shutdown(std::chrono::milliseconds(200)); }

core::Status GrpcServer::Start() {
  Impl& i = *impl_;
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!i.options.tls_cert.empty()) {
    core::Status st;
    grpc::SslServerCredentialsOptions ssl(
        i.options.tls_client_ca.empty()
            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_key_cert_pairs.push_back(
        {ReadFile(i.options.tls_key, st), ReadFile(i.options.tls_cert, st)});
    if (!i.options.tls_client_ca.empty())
      ssl.pem_root_certs = ReadFile(i.options.tls_client_ca, st);
    if (!st.ok()) return st;
    creds = grpc::SslServerCredentials(ssl);
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  i.crew_service = std::make_unique<Impl::CrewServiceImpl>(i);
  i.noc_service = std::make_unique<Impl::NocServiceImpl>(i);
  grpc::ServerBuilder b;
  b.AddListeningPort(i.options.listen, creds, &i.port);
  b.RegisterService(i.crew_service.get());
  b.RegisterService(i.noc_service.get());
  b.SetMaxReceiveMessageSize(i.options.max_request_bytes);
  b.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, i.options.max_concurrent_streams);
  b.SetMaxSendMessageSize(16 << 20);
  i.server = b.BuildAndStart();
  if (!i.server || i.port == 0)
    return core::Status::Unavailable("grpc: cannot listen on " + i.options.listen);
  i.server->GetHealthCheckService()->SetServingStatus("sitepower.v1.CrewService", true);
  i.server->GetHealthCheckService()->SetServingStatus("sitepower.v1.NocService", true);
  return core::Status::Ok();
}

int GrpcServer::port() const { return impl_->port; }

void GrpcServer::PublishQueue() {
  std::lock_guard<std::mutex> lock(impl_->watchers_mu);
  for (auto* w : impl_->watchers) w->Changed();
}

void GrpcServer::Shutdown(std::chrono::milliseconds deadline) {
  if (!impl_->server) return;
  impl_->server->Shutdown(std::chrono::system_clock::now() + deadline);
  impl_->server->Wait();
  impl_->server.reset();
}

void GrpcServer::SetLocationListener(
    std::function<void(const core::CrewId&, core::LatLon, core::TimePoint)> listener) {
  std::lock_guard<std::mutex> lock(impl_->location_mu);
  impl_->on_location = std::move(listener);
}

int GrpcServer::StreamClients() const { return impl_->crew_kind_streams + impl_->noc_kind_streams; }

std::string GrpcServer::MetricsText() const {
  return "# HELP sitepower_stream_clients Connected gRPC stream clients, by the role of their "
         "token.\n# TYPE sitepower_stream_clients gauge\nsitepower_stream_clients{kind=\"crew\"} " +
         std::to_string(impl_->crew_kind_streams) + "\nsitepower_stream_clients{kind=\"noc\"} " +
         std::to_string(impl_->noc_kind_streams) + "\n";
}

}  // namespace sitepower::api
