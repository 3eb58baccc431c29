#include "tasks/task_ledger.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace sitepower::tasks {
namespace {

class FixedClock : public core::Clock {
 public:
  core::TimePoint Now() const override { return now; }
  core::TimePoint now{core::Millis(1583627400000)};
};

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sp-ledger-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Open();
  }
  void Open() {
    ledger_.reset();
    store_.reset();
    store_ = std::move(store::OpenSqliteStore((dir_ / "t.db").string())).value();
    ledger_ = std::make_unique<TaskLedger>(*store_, clock_);
    ASSERT_TRUE(ledger_->Recover().ok());
  }
  Assignment A(const std::string& site, const std::string& crew, int order) {
    Assignment a;
    a.site = site;
    a.crew = crew;
    a.order = order;
    a.reason = "r";
    return a;
  }
  std::filesystem::path dir_;
  FixedClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<TaskLedger> ledger_;
};

// A technician's phone never sees an ETA go back the way it just came
// within ten minutes; drift under five minutes is not pushed at all.
TEST_F(LedgerTest, EtaReversalsAreHeldForTenMinutes) {
  auto plan = [this](int eta_min) {
    Assignment a = A("S1", "A1", 1);
    a.eta = clock_.now + std::chrono::minutes(eta_min);
    return ledger_->ApplyPlan({a}, "test");
  };
  ASSERT_EQ(plan(60).size(), 1u);  // assigned, ETA now+60
  clock_.now += std::chrono::minutes(1);
  EXPECT_TRUE(plan(62).empty());  // 3 min drift: kept quiet
  auto ev = plan(80);             // 20 min later: pushed
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, EventKind::kUpdated);
  clock_.now += std::chrono::minutes(4);
  EXPECT_TRUE(plan(50).empty());  // back again within 10 min: held
  EXPECT_EQ(ledger_->OpenTasks()[0].eta,
            clock_.now - std::chrono::minutes(4) + std::chrono::minutes(80));
  clock_.now += std::chrono::minutes(7);
  ev = plan(40);  // 11 min after the push: told
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].task.eta, clock_.now + std::chrono::minutes(40));
  clock_.now += std::chrono::minutes(1);
  ev = plan(70);  // later again so soon: held...
  EXPECT_TRUE(ev.empty());
  Assignment reordered = A("S1", "A1", 2);  // ...unless the order changes
  reordered.eta = clock_.now + std::chrono::minutes(70);
  ev = ledger_->ApplyPlan({reordered}, "test");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].task.order, 2);
  // Far ahead, a move must be at least 15 % of the time still to go.
  clock_.now += std::chrono::minutes(30);
  Assignment far = A("S1", "A1", 2);
  far.eta = clock_.now + std::chrono::minutes(180);
  ASSERT_EQ(ledger_->ApplyPlan({far}, "test").size(), 1u);  // 70 min later: told
  clock_.now += std::chrono::minutes(1);
  far.eta += std::chrono::minutes(20);  // 20 of 179 min: quiet
  EXPECT_TRUE(ledger_->ApplyPlan({far}, "test").empty());
  far.eta += std::chrono::minutes(10);  // 30 of 179 min: told
  EXPECT_EQ(ledger_->ApplyPlan({far}, "test").size(), 1u);
}

TEST_F(LedgerTest, FullLifecycleAndRefusals) {
  auto ev = ledger_->ApplyPlan({A("S1", "A1", 1)}, "test");
  ASSERT_EQ(ev.size(), 1u);
  const std::string id = ev[0].task.id;
  EXPECT_EQ(ev[0].seq, 1u);
  EXPECT_EQ(ev[0].kind, EventKind::kAssigned);
  // Refusals name why.
  auto bad = ledger_->Update("A1", id, TaskStatus::kGeneratorRunning, "", "k0");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), core::Status::Code::kFailedPrecondition);
  EXPECT_NE(bad.status().message().find("accept the task first"), std::string::npos);
  EXPECT_EQ(ledger_->Update("B1", id, TaskStatus::kAccepted, "", "k1").status().code(),
            core::Status::Code::kPermissionDenied);
  EXPECT_EQ(ledger_->Update("A1", "T-nope", TaskStatus::kAccepted, "", "k2").status().code(),
            core::Status::Code::kNotFound);
  EXPECT_EQ(ledger_->Update("A1", id, TaskStatus::kAccepted, "", "").status().code(),
            core::Status::Code::kInvalidArgument);
  for (auto [to, key] :
       {std::pair{TaskStatus::kAccepted, "k3"}, std::pair{TaskStatus::kEnRoute, "k4"},
        std::pair{TaskStatus::kOnSite, "k5"}, std::pair{TaskStatus::kGeneratorRunning, "k6"}}) {
    auto r = ledger_->Update("A1", id, to, "", key);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->task.status, to);
  }
  EXPECT_EQ(ledger_->Update("A1", id, TaskStatus::kOnSite, "", "k7").status().code(),
            core::Status::Code::kFailedPrecondition);  // backwards
  EXPECT_EQ(ledger_->Update("A1", id, TaskStatus::kDeclined, "x", "k8").status().code(),
            core::Status::Code::kFailedPrecondition);  // generator already runs
  ledger_->OnMainsRestored("S1");
  EXPECT_TRUE(ledger_->OpenTasks().empty());
  auto hist = ledger_->EventsAfter("A1", 0);
  ASSERT_EQ(hist.size(), 6u);
  EXPECT_EQ(hist.back().task.status, TaskStatus::kReleased);
  for (size_t i = 0; i < hist.size(); ++i) EXPECT_EQ(hist[i].seq, i + 1);
}

TEST_F(LedgerTest, RetriedUpdateIsAppliedOnce) {
  auto id = ledger_->ApplyPlan({A("S1", "A1", 1)}, "t")[0].task.id;
  auto r1 = ledger_->Update("A1", id, TaskStatus::kAccepted, "", "same");
  auto r2 = ledger_->Update("A1", id, TaskStatus::kAccepted, "", "same");
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_FALSE(r1->duplicate);
  EXPECT_TRUE(r2->duplicate);
  EXPECT_EQ(ledger_->LastSeq("A1"), 2u);
}

// The outside client's finding: a key reused to decline another task must not
// return the first answer (and lose the decline); it is refused, also after
// a restart, and the decline goes through with its own key.
TEST_F(LedgerTest, AKeyIsBoundToItsRequest) {
  auto ev = ledger_->ApplyPlan({A("S1", "A1", 1), A("S2", "A1", 2)}, "test");
  ASSERT_EQ(ev.size(), 2u);
  const std::string t1 = ev[0].task.id, t2 = ev[1].task.id;
  ASSERT_TRUE(ledger_->Update("A1", t1, TaskStatus::kAccepted, "", "k").ok());
  for (int restart = 0; restart < 2; ++restart) {
    auto other = ledger_->Update("A1", t2, TaskStatus::kDeclined, "flood", "k");
    ASSERT_FALSE(other.ok());
    EXPECT_EQ(other.status().code(), core::Status::Code::kInvalidArgument);
    EXPECT_NE(other.status().message().find("idempotency key reused for another request"),
              std::string::npos)
        << other.status().message();
    // Same task, another status, or another reason: also another request.
    EXPECT_FALSE(ledger_->Update("A1", t1, TaskStatus::kDeclined, "x", "k").ok());
    auto same = ledger_->Update("A1", t1, TaskStatus::kAccepted, "", "k");
    ASSERT_TRUE(same.ok());
    EXPECT_TRUE(same->duplicate);
    Open();
  }
  auto decline = ledger_->Update("A1", t2, TaskStatus::kDeclined, "flood", "k2");
  ASSERT_TRUE(decline.ok()) << decline.status().ToString();
  EXPECT_FALSE(decline->duplicate);
  EXPECT_EQ(decline->task.status, TaskStatus::kDeclined);
  // Keys are scoped per crew: B1 may use "k" for its own task.
  auto b = ledger_->ApplyPlan({A("S1", "A1", 1), A("S3", "B1", 1)}, "test");
  ASSERT_FALSE(b.empty());
  auto b1 = ledger_->Update("B1", b.back().task.id, TaskStatus::kAccepted, "", "k");
  ASSERT_TRUE(b1.ok()) << b1.status().ToString();
  EXPECT_FALSE(b1->duplicate);
}

TEST_F(LedgerTest, IdempotencyKeysExpireAfterTheirTtl) {
  auto ev = ledger_->ApplyPlan({A("S1", "A1", 1), A("S2", "A1", 2)}, "test");
  const std::string t1 = ev[0].task.id, t2 = ev[1].task.id;
  ASSERT_TRUE(ledger_->Update("A1", t1, TaskStatus::kAccepted, "", "k").ok());
  clock_.now += kIdempotencyTtl - std::chrono::minutes(1);
  EXPECT_TRUE(ledger_->Update("A1", t1, TaskStatus::kAccepted, "", "k")->duplicate);
  clock_.now += std::chrono::minutes(2);  // past the TTL: the key is new again
  auto reuse = ledger_->Update("A1", t2, TaskStatus::kAccepted, "", "k");
  ASSERT_TRUE(reuse.ok()) << reuse.status().ToString();
  EXPECT_FALSE(reuse->duplicate);
  EXPECT_EQ(reuse->task.id, t2);
}

TEST_F(LedgerTest, NocActingForACrewIsAudited) {
  auto ev = ledger_->ApplyPlan({A("S1", "A1", 1)}, "test");
  auto r = ledger_->Update("A1", ev[0].task.id, TaskStatus::kAccepted, "", "k",
                           Actor{Actor::Role::kNoc, "alice"});
  ASSERT_TRUE(r.ok());
  auto audit = store_->LoadAudit(1);
  ASSERT_TRUE(audit.ok() && audit->size() == 1u);
  EXPECT_EQ(audit->at(0).who, "alice");
  EXPECT_EQ(audit->at(0).role, "noc");
  EXPECT_NE(audit->at(0).detail.find("noc alice acting for A1"), std::string::npos);
  auto events = ledger_->EventsAfter("A1", 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_NE(events[0].message.find("noc alice acting for A1"), std::string::npos);
  // A crew's own update is audited as the crew.
  ASSERT_TRUE(ledger_->Update("A1", ev[0].task.id, TaskStatus::kEnRoute, "", "k2").ok());
  EXPECT_EQ(store_->LoadAudit(1)->at(0).who, "A1");
  EXPECT_EQ(store_->LoadAudit(1)->at(0).role, "crew");
}

TEST_F(LedgerTest, DeclineReturnsSiteAndReplanReassignsVisibly) {
  auto id = ledger_->ApplyPlan({A("S1", "A1", 1), A("S2", "A1", 2)}, "t")[0].task.id;
  EXPECT_FALSE(ledger_->Update("A1", id, TaskStatus::kDeclined, "", "d0").ok());  // reason needed
  ASSERT_TRUE(ledger_->Update("A1", id, TaskStatus::kDeclined, "road flooded", "d1").ok());
  EXPECT_EQ(ledger_->OpenTasks().size(), 1u);
  // Next plan gives S1 to B1 and moves S2 to B1 too: A1 hears REASSIGNED, B1 ASSIGNED.
  auto ev = ledger_->ApplyPlan({A("S1", "B1", 1), A("S2", "B1", 2)}, "decline");
  int reassigned = 0, assigned_b = 0;
  for (const auto& e : ev) {
    reassigned += e.kind == EventKind::kReassigned && e.crew == "A1";
    assigned_b += e.kind == EventKind::kAssigned && e.crew == "B1";
  }
  EXPECT_EQ(reassigned, 1);
  EXPECT_EQ(assigned_b, 2);
  // A site leaving the plan is cancelled, never silently dropped.
  ev = ledger_->ApplyPlan({A("S1", "B1", 1)}, "S2 not needed");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, EventKind::kCancelled);
}

TEST_F(LedgerTest, TelemetryClosesTheLoopAndEscalationFindsSilentCrews) {
  auto id = ledger_->ApplyPlan({A("S1", "A1", 1), A("S2", "A1", 2)}, "t")[0].task.id;
  clock_.now += std::chrono::minutes(15);
  EXPECT_EQ(ledger_->UnacknowledgedSince(clock_.now - std::chrono::minutes(10)).size(), 2u);
  ledger_->OnGeneratorRunning("S1");
  auto open = ledger_->OpenTasks();
  EXPECT_EQ(open[0].status, TaskStatus::kGeneratorRunning);
  EXPECT_EQ(open[0].id, id);
}

TEST_F(LedgerTest, EverythingSurvivesRestart) {
  auto id = ledger_->ApplyPlan({A("S1", "A1", 1)}, "t")[0].task.id;
  ASSERT_TRUE(ledger_->Update("A1", id, TaskStatus::kAccepted, "", "k1").ok());
  Open();  // as after kill -9: only the store remains
  EXPECT_EQ(ledger_->LastSeq("A1"), 2u);
  ASSERT_EQ(ledger_->OpenTasks().size(), 1u);
  EXPECT_EQ(ledger_->OpenTasks()[0].status, TaskStatus::kAccepted);
  auto dup = ledger_->Update("A1", id, TaskStatus::kAccepted, "", "k1");
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(dup->duplicate);
  auto next = ledger_->ApplyPlan({A("S1", "A1", 1), A("S9", "A1", 2)}, "t");
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].seq, 3u);
  EXPECT_NE(next[0].task.id, id);  // ids are not reused after restart
}

}  // namespace
}  // namespace sitepower::tasks
