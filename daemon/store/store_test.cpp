#include "store/store.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace sitepower::store {
namespace {

std::string TempDb() {
  auto dir = std::filesystem::temp_directory_path() /
             ("sp-store-" + std::to_string(getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return (dir / "s.db").string();
}

TEST(StoreTest, CommitsSurviveReopen) {
  std::string path = TempDb();
  {
    auto s = OpenSqliteStore(path);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    Commit c;
    c.events.push_back({"A1", 1, 1000, "T-1", "assigned", "{\"id\":\"T-1\"}", "new"});
    c.events.push_back({"A1", 2, 2000, "T-1", "status", "{\"id\":\"T-1\",\"s\":2}", "accepted"});
    c.tasks.push_back({"T-1", "{\"id\":\"T-1\",\"s\":2}"});
    c.idempotency = {{"A1/k1", "{\"ok\":1}"}};
    c.audit.push_back({2000, "A1", "crew", "task.accept", "T-1"});
    c.kv.push_back({"site/WZ-01", "{\"mains_fail_at\":5}"});
    ASSERT_TRUE((*s)->Apply(c).ok());
  }
  auto s = OpenSqliteStore(path);
  ASSERT_TRUE(s.ok());
  auto ev = (*s)->LoadTaskEvents();
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->size(), 2u);
  EXPECT_EQ((*ev)[1].seq, 2u);
  EXPECT_EQ((*ev)[1].message, "accepted");
  EXPECT_EQ((*s)->LoadTasks()->at("T-1"), "{\"id\":\"T-1\",\"s\":2}");
  EXPECT_EQ(*(*s)->GetIdempotency("A1/k1").value(), "{\"ok\":1}");
  EXPECT_FALSE((*s)->GetIdempotency("nope").value().has_value());
  EXPECT_EQ((*s)->LoadAudit(10)->at(0).action, "task.accept");
  EXPECT_EQ((*s)->LoadKv("site/")->size(), 1u);
}

TEST(StoreTest, FailedCommitLeavesNothingBehind) {
  auto s = OpenSqliteStore(TempDb());
  ASSERT_TRUE(s.ok());
  Commit a;
  a.events.push_back({"A1", 1, 1, "T-1", "assigned", "{}", ""});
  ASSERT_TRUE((*s)->Apply(a).ok());
  Commit dup;
  dup.tasks.push_back({"T-9", "{}"});
  dup.events.push_back({"A1", 1, 2, "T-9", "assigned", "{}", ""});  // same (crew, seq): rejected
  auto st = (*s)->Apply(dup);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("task event A1#1"), std::string::npos) << st.message();
  EXPECT_EQ((*s)->LoadTasks()->count("T-9"), 0u);  // rolled back as a whole
}

TEST(StoreTest, UnopenablePathIsAClearError) {
  auto s = OpenSqliteStore("/nonexistent-dir/x/y.db");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("/nonexistent-dir/x/y.db"), std::string::npos);
}

}  // namespace
}  // namespace sitepower::store
