// The API over real gRPC on loopback: auth matrix, lifecycle, resume.
#include "api/grpc_server.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "sitepower/v1/crew.grpc.pb.h"
#include "sitepower/v1/noc.grpc.pb.h"

namespace sitepower::api {
namespace {

namespace v1 = sitepower::v1;

class FakeNoc : public NocBackend {
 public:
  v1::ListSitesResponse ListSites() override {
    v1::ListSitesResponse r;
    r.add_sites()->set_site_id("S1");
    return r;
  }
  v1::QueueSnapshot Snapshot() override {
    v1::QueueSnapshot q;
    q.set_version(++version);
    return q;
  }
  std::atomic<uint64_t> version{0};
};

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = std::filesystem::temp_directory_path() /
               ("sp-api-" + std::to_string(getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    store_ = std::move(store::OpenSqliteStore((dir / "a.db").string())).value();
    ledger_ = std::make_unique<tasks::TaskLedger>(*store_, clock_);
    ServerOptions o;
    o.tokens_by_sha256[Sha256Hex("tok-a1")] = {Principal::Role::kCrew, "A1"};
    o.tokens_by_sha256[Sha256Hex("tok-b1")] = {Principal::Role::kCrew, "B1"};
    o.tokens_by_sha256[Sha256Hex("tok-noc")] = {Principal::Role::kNoc, "ops"};
    Configure(o);
    server_ = std::make_unique<GrpcServer>(o, *ledger_, noc_, *store_, clock_);
    ASSERT_TRUE(server_->Start().ok());
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    crew_ = v1::CrewService::NewStub(channel_);
    noc_stub_ = v1::NocService::NewStub(channel_);
  }
  virtual void Configure(ServerOptions&) {}
  void TearDown() override { server_->Shutdown(std::chrono::milliseconds(100)); }

  std::string Assign(const std::string& site, const std::string& crew) {
    tasks::Assignment a;
    a.site = site;
    a.crew = crew;
    a.order = 1;
    a.reason = "test";
    auto ev = ledger_->ApplyPlan({a}, "test");
    return ev.empty() ? "" : ev.back().task.id;
  }
  grpc::Status Update(const std::string& token, const std::string& crew, const std::string& id,
                      v1::TaskStatus s, const std::string& key, v1::UpdateTaskResponse* resp) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::UpdateTaskRequest req;
    req.set_crew_id(crew);
    req.set_task_id(id);
    req.set_status(s);
    req.set_idempotency_key(key);
    return crew_->UpdateTask(&ctx, req, resp);
  }

  core::SystemClock clock_;
  FakeNoc noc_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<tasks::TaskLedger> ledger_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CrewService::Stub> crew_;
  std::unique_ptr<v1::NocService::Stub> noc_stub_;
};

TEST_F(ApiTest, AuthMatrix) {
  std::string id = Assign("S1", "A1");
  v1::UpdateTaskResponse r;
  EXPECT_EQ(Update("", "A1", id, v1::TASK_STATUS_ACCEPTED, "k", &r).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Update("bogus", "A1", id, v1::TASK_STATUS_ACCEPTED, "k", &r).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Update("tok-b1", "A1", id, v1::TASK_STATUS_ACCEPTED, "k", &r).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);  // B1 acting for A1
  EXPECT_EQ(Update("tok-b1", "B1", id, v1::TASK_STATUS_ACCEPTED, "k", &r).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);  // A1's task
  EXPECT_TRUE(Update("tok-a1", "A1", id, v1::TASK_STATUS_ACCEPTED, "k", &r).ok());
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer tok-a1");
  v1::ListSitesResponse sites;
  EXPECT_EQ(noc_stub_->ListSites(&ctx, v1::ListSitesRequest(), &sites).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);  // crews are not NOC
  grpc::ClientContext ctx2;
  ctx2.AddMetadata("authorization", "Bearer tok-noc");
  EXPECT_TRUE(noc_stub_->ListSites(&ctx2, v1::ListSitesRequest(), &sites).ok());
  EXPECT_EQ(sites.sites_size(), 1);
}

// Calls any RPC by its descriptor (unary or server-streaming) and returns how
// it ended. A call that is let through is cancelled after its first message.
grpc::Status CallByDescriptor(const std::shared_ptr<grpc::Channel>& channel,
                              const google::protobuf::MethodDescriptor& m,
                              const google::protobuf::Message& request, const std::string& token) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  const std::string method = "/" + m.service()->full_name() + "/" + m.name();
  auto call = stub.PrepareCall(&ctx, method, &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&cq, &tag, &ok]() { return cq.Next(&tag, &ok) && ok; };
  call->StartCall(reinterpret_cast<void*>(1));
  step();
  grpc::Slice slice(request.SerializeAsString());
  grpc::ByteBuffer out(&slice, 1);
  call->WriteLast(out, grpc::WriteOptions(), reinterpret_cast<void*>(2));
  step();
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(3));
  if (step()) ctx.TryCancel();  // let through: not what these tests look for
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  step();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

// Every RPC of every service in crew.proto and noc.proto, from the
// descriptors: a new RPC is covered without editing this test. Each must
// refuse no token, a wrong token and a crew token acting for another crew
// (CrewService) or any crew token (NocService).
TEST_F(ApiTest, EveryRpcRefusesMissingWrongAndForeignTokens) {
  Assign("S1", "A1");
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  int methods = 0;
  for (const char* file : {"sitepower/v1/crew.proto", "sitepower/v1/noc.proto"}) {
    const auto* fd = pool->FindFileByName(file);
    ASSERT_NE(fd, nullptr) << file;
    for (int s = 0; s < fd->service_count(); ++s) {
      const auto* service = fd->service(s);
      const bool noc_only = service->full_name() != "sitepower.v1.CrewService";
      for (int i = 0; i < service->method_count(); ++i) {
        const auto& m = *service->method(i);
        std::unique_ptr<google::protobuf::Message> req(
            google::protobuf::MessageFactory::generated_factory()
                ->GetPrototype(m.input_type())
                ->New());
        if (const auto* crew_field = m.input_type()->FindFieldByName("crew_id"))
          req->GetReflection()->SetString(req.get(), crew_field, "A1");
        else
          EXPECT_TRUE(noc_only) << m.full_name() << ": a CrewService RPC without crew_id";
        const std::vector<std::pair<std::string, grpc::StatusCode>> cases = {
            {"", grpc::StatusCode::UNAUTHENTICATED},
            {"wrong-token", grpc::StatusCode::UNAUTHENTICATED},
            {"tok-b1", grpc::StatusCode::PERMISSION_DENIED},  // crew B1
        };
        for (const auto& [token, want] : cases) {
          EXPECT_EQ(CallByDescriptor(channel_, m, *req, token).error_code(), want)
              << m.full_name() << " with token '" << token << "'";
        }
        if (noc_only) {
          EXPECT_EQ(CallByDescriptor(channel_, m, *req, "tok-a1").error_code(),
                    grpc::StatusCode::PERMISSION_DENIED)
              << m.full_name() << ": a crew's own token";
        }
        ++methods;
      }
    }
  }
  EXPECT_GE(methods, 6);
}

// The NOC acts for a crew: allowed, audited with the operator's name, and
// the crew's event says who did it.
TEST_F(ApiTest, NocMayActForACrewAndIsAudited) {
  std::string id = Assign("S1", "A1");
  v1::UpdateTaskResponse r;
  ASSERT_TRUE(Update("tok-noc", "A1", id, v1::TASK_STATUS_ACCEPTED, "n1", &r).ok());
  EXPECT_EQ(r.task().status(), v1::TASK_STATUS_ACCEPTED);
  auto audit = store_->LoadAudit(1);
  ASSERT_TRUE(audit.ok() && !audit->empty());
  EXPECT_EQ(audit->at(0).who, "ops");
  EXPECT_NE(audit->at(0).detail.find("noc ops acting for A1"), std::string::npos);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer tok-noc");
  v1::SubscribeTasksRequest req;
  req.set_crew_id("A1");
  req.set_after_seq(1);
  auto reader = crew_->SubscribeTasks(&ctx, req);
  v1::TaskEvent e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_NE(e.message().find("noc ops acting for A1"), std::string::npos) << e.message();
  EXPECT_NE(server_->MetricsText().find("sitepower_stream_clients{kind=\"noc\"} 1"),
            std::string::npos)
      << server_->MetricsText();
  ctx.TryCancel();
  reader->Finish();
  EXPECT_EQ(store_->LoadAudit(1)->at(0).action, "stream.subscribe");
}

TEST_F(ApiTest, AKeyReusedForAnotherRequestIsInvalidArgument) {
  std::string t1 = Assign("S1", "A1");
  tasks::Assignment a1, a2;
  a1.site = "S1";
  a2.site = "S2";
  a1.crew = a2.crew = "A1";
  a1.order = 1;
  a2.order = 2;
  auto ev = ledger_->ApplyPlan({a1, a2}, "test");
  ASSERT_FALSE(ev.empty());
  std::string t2 = ev.back().task.id;
  v1::UpdateTaskResponse r;
  ASSERT_TRUE(Update("tok-a1", "A1", t1, v1::TASK_STATUS_ACCEPTED, "same", &r).ok());
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer tok-a1");
  v1::UpdateTaskRequest req;
  req.set_crew_id("A1");
  req.set_task_id(t2);
  req.set_status(v1::TASK_STATUS_DECLINED);
  req.set_reason("road closed");
  req.set_idempotency_key("same");
  grpc::Status st = crew_->UpdateTask(&ctx, req, &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("idempotency key reused for another request"),
            std::string::npos)
      << st.error_message();
  EXPECT_EQ(ledger_->CrewTasks("A1").size(), 2u);  // the decline was not applied, and said so
}

TEST_F(ApiTest, StreamsPerCrewAreBounded) {
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::TaskEvent>>> readers;
  Assign("S1", "A1");
  for (int i = 0; i < 4; ++i) {  // ServerOptions::max_streams_per_crew
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    ctxs.back()->AddMetadata("authorization", "Bearer tok-a1");
    v1::SubscribeTasksRequest req;
    req.set_crew_id("A1");
    readers.push_back(crew_->SubscribeTasks(ctxs.back().get(), req));
    v1::TaskEvent e;
    ASSERT_TRUE(readers.back()->Read(&e));  // open and counted
  }
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer tok-a1");
  v1::SubscribeTasksRequest req;
  req.set_crew_id("A1");
  auto extra = crew_->SubscribeTasks(&ctx, req);
  v1::TaskEvent e;
  EXPECT_FALSE(extra->Read(&e));
  EXPECT_EQ(extra->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(server_->MetricsText().find("sitepower_stream_clients{kind=\"crew\"} 4"),
            std::string::npos);
  for (size_t i = 0; i < readers.size(); ++i) {
    ctxs[i]->TryCancel();
    readers[i]->Finish();
  }
}

// Guessing tokens from one peer: after the free failures the peer is refused
// unchecked (even with a good token) until its delay has passed.
class ThrottledApiTest : public ApiTest {
 protected:
  void Configure(ServerOptions& o) override {
    Authenticator::Options a;
    a.free_failures = 2;
    a.slow_loopback = true;  // the test's peer is loopback
    a.base_delay = std::chrono::hours(1);
    o.authenticator = std::make_shared<Authenticator>(o.tokens_by_sha256, a);
  }
};

TEST_F(ThrottledApiTest, RepeatedBadTokensAreSlowedDown) {
  std::string id = Assign("S1", "A1");
  v1::UpdateTaskResponse r;
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(Update("guess-" + std::to_string(i), "A1", id, v1::TASK_STATUS_ACCEPTED, "k", &r)
                  .error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  auto st = Update("tok-a1", "A1", id, v1::TASK_STATUS_ACCEPTED, "k", &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("too many failed attempts"), std::string::npos);
  EXPECT_EQ(ledger_->CrewTasks("A1").at(0).status, tasks::TaskStatus::kAssigned);
}

TEST_F(ApiTest, LifecycleRefusalsAndIdempotency) {
  std::string id = Assign("S1", "A1");
  v1::UpdateTaskResponse r;
  auto st = Update("tok-a1", "A1", id, v1::TASK_STATUS_ON_SITE, "k1", &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("accept the task first"), std::string::npos);
  ASSERT_TRUE(Update("tok-a1", "A1", id, v1::TASK_STATUS_ACCEPTED, "k2", &r).ok());
  EXPECT_FALSE(r.duplicate());
  ASSERT_TRUE(Update("tok-a1", "A1", id, v1::TASK_STATUS_ACCEPTED, "k2", &r).ok());
  EXPECT_TRUE(r.duplicate());
  EXPECT_EQ(r.task().status(), v1::TASK_STATUS_ACCEPTED);
  EXPECT_EQ(Update("tok-a1", "A1", "T-x", v1::TASK_STATUS_ON_SITE, "k3", &r).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Update("tok-a1", "A1", id, v1::TASK_STATUS_RELEASED, "k4", &r).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// Reads events until `n` arrived or the stream ends.
std::vector<v1::TaskEvent> ReadN(v1::CrewService::Stub& stub, const std::string& crew,
                                 uint64_t after, size_t n, grpc::ClientContext& ctx) {
  ctx.AddMetadata("authorization", "Bearer tok-a1");
  v1::SubscribeTasksRequest req;
  req.set_crew_id(crew);
  req.set_after_seq(after);
  auto reader = stub.SubscribeTasks(&ctx, req);
  std::vector<v1::TaskEvent> got;
  v1::TaskEvent e;
  while (got.size() < n && reader->Read(&e)) got.push_back(e);
  ctx.TryCancel();
  reader->Finish();
  return got;
}

TEST_F(ApiTest, StreamResumesWithoutGapOrDuplicate) {
  std::string id = Assign("S1", "A1");
  v1::UpdateTaskResponse r;
  ASSERT_TRUE(Update("tok-a1", "A1", id, v1::TASK_STATUS_ACCEPTED, "a", &r).ok());
  {
    grpc::ClientContext ctx;
    auto first = ReadN(*crew_, "A1", 0, 2, ctx);
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(first[0].seq(), 1u);
    EXPECT_EQ(first[0].kind(), v1::TaskEvent::KIND_ASSIGNED);
    EXPECT_EQ(first[1].seq(), 2u);
  }
  // While disconnected, two more events happen.
  ASSERT_TRUE(Update("tok-a1", "A1", id, v1::TASK_STATUS_EN_ROUTE, "b", &r).ok());
  ASSERT_TRUE(Update("tok-a1", "A1", id, v1::TASK_STATUS_ON_SITE, "c", &r).ok());
  grpc::ClientContext ctx;
  std::thread later([this, id]() {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    v1::UpdateTaskResponse r2;
    Update("tok-a1", "A1", id, v1::TASK_STATUS_GENERATOR_RUNNING, "d", &r2);
  });
  auto resumed = ReadN(*crew_, "A1", 2, 3, ctx);  // 2 missed + 1 live
  later.join();
  ASSERT_EQ(resumed.size(), 3u);
  EXPECT_EQ(resumed[0].seq(), 3u);
  EXPECT_EQ(resumed[1].seq(), 4u);
  EXPECT_EQ(resumed[2].seq(), 5u);
  EXPECT_EQ(resumed[2].task().status(), v1::TASK_STATUS_GENERATOR_RUNNING);
}

// Reconnecting while events keep coming (a restarted daemon re-plans as the
// crews come back): a live event must never overtake the replay of what the
// client missed.
TEST_F(ApiTest, ResumeDuringABurstOfEventsHasNoGap) {
  std::atomic<bool> stop{false};
  std::thread producer([this, &stop]() {
    for (int i = 0; !stop && i < 4000; ++i) {
      tasks::Assignment a;
      a.site = "S" + std::to_string(i);
      a.crew = "A1";
      a.order = 1;
      a.reason = "burst";
      ledger_->ApplyPlan({a}, "burst");  // assigns S<i>, cancels S<i-1>
    }
  });
  uint64_t last = 0;
  std::vector<uint64_t> seqs;
  for (int round = 0; round < 30; ++round) {
    grpc::ClientContext ctx;
    for (const auto& e : ReadN(*crew_, "A1", last, 5, ctx)) {
      seqs.push_back(e.seq());
      last = e.seq();
    }
  }
  stop = true;
  producer.join();
  ASSERT_GE(seqs.size(), 100u);
  for (size_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], i + 1) << "at " << i;
}

// Limits: an oversized request gets a clear RESOURCE_EXHAUSTED, the server
// stays up; a subscriber that falls too far behind is told to resume.
TEST_F(ApiTest, OversizedRequestIsAClearError) {
  std::string id = Assign("S1", "A1");
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer tok-a1");
  v1::UpdateTaskRequest req;
  req.set_crew_id("A1");
  req.set_task_id(id);
  req.set_status(v1::TASK_STATUS_DECLINED);
  req.set_reason(std::string(128 << 10, 'x'));  // 128 KiB: over the 64 KiB limit
  req.set_idempotency_key("big");
  v1::UpdateTaskResponse resp;
  grpc::Status st = crew_->UpdateTask(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  // Nothing was applied, and the server still answers.
  v1::UpdateTaskResponse r;
  EXPECT_TRUE(Update("tok-a1", "A1", id, v1::TASK_STATUS_ACCEPTED, "after", &r).ok());
}

TEST_F(ApiTest, QueueWatchNeedsNocAndStreams) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer tok-noc");
  auto reader = noc_stub_->WatchQueue(&ctx, v1::WatchQueueRequest());
  v1::QueueSnapshot q;
  ASSERT_TRUE(reader->Read(&q));
  server_->PublishQueue();
  ASSERT_TRUE(reader->Read(&q));
  EXPECT_GE(q.version(), 2u);
  ctx.TryCancel();
  reader->Finish();
}

}  // namespace
}  // namespace sitepower::api
