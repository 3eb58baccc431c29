// The API over real gRPC on loopback: auth matrix, lifecycle, resume.
#include "api/grpc_server.hpp"

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
    server_ = std::make_unique<GrpcServer>(o, *ledger_, noc_, *store_, clock_);
    ASSERT_TRUE(server_->Start().ok());
    auto ch = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                  grpc::InsecureChannelCredentials());
    crew_ = v1::CrewService::NewStub(ch);
    noc_stub_ = v1::NocService::NewStub(ch);
  }
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
  req.set_reason(std::string(2 << 20, 'x'));  // 2 MiB: over the 1 MiB limit
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
