#include "store/store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
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
    c.idempotency = IdempotencyRecord{"A1/k1", "d1", "{\"ok\":1}", 1500};
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
  auto idem = (*s)->GetIdempotency("A1/k1");
  ASSERT_TRUE(idem.ok() && idem->has_value());
  EXPECT_EQ((*idem)->reply, "{\"ok\":1}");
  EXPECT_EQ((*idem)->digest, "d1");
  EXPECT_EQ((*idem)->at_unix_ms, 1500);
  EXPECT_FALSE((*s)->GetIdempotency("nope").value().has_value());
  EXPECT_EQ((*s)->LoadAudit(10)->at(0).action, "task.accept");
  EXPECT_EQ((*s)->LoadKv("site/")->size(), 1u);
}

TEST(StoreTest, IdempotencyKeysExpireAndAnExpiredKeyIsReused) {
  auto s = OpenSqliteStore(TempDb());
  ASSERT_TRUE(s.ok());
  Commit a;
  a.idempotency = IdempotencyRecord{"A1/old", "d-old", "{}", 1000};
  ASSERT_TRUE((*s)->Apply(a).ok());
  Commit b;
  b.idempotency = IdempotencyRecord{"A1/new", "d-new", "{}", 5000};
  ASSERT_TRUE((*s)->Apply(b).ok());
  Commit expire;
  expire.expire_idempotency_before_ms = 2000;
  ASSERT_TRUE((*s)->Apply(expire).ok());
  EXPECT_FALSE((*s)->GetIdempotency("A1/old").value().has_value());
  EXPECT_TRUE((*s)->GetIdempotency("A1/new").value().has_value());
  Commit again;  // the same key, answered anew: replaces the record
  again.idempotency = IdempotencyRecord{"A1/new", "d-other", "{\"x\":1}", 9000};
  ASSERT_TRUE((*s)->Apply(again).ok());
  EXPECT_EQ((*s)->GetIdempotency("A1/new").value()->digest, "d-other");
}

// A store written by schema 1 (no digest, no time) opens, and its keys live
// on from the migration with an empty digest.
TEST(StoreTest, MigratesSchemaOneIdempotencyKeys) {
  std::string path = TempDb();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE task_events (crew TEXT NOT NULL, seq INTEGER NOT NULL, "
                           "at_ms INTEGER NOT NULL, task_id TEXT NOT NULL, kind TEXT NOT NULL, "
                           "task_json TEXT NOT NULL, message TEXT NOT NULL, PRIMARY KEY (crew, "
                           "seq)); CREATE TABLE tasks (id TEXT PRIMARY KEY, json TEXT NOT NULL);"
                           "CREATE TABLE idempotency (key TEXT PRIMARY KEY, reply TEXT NOT NULL);"
                           "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms "
                           "INTEGER NOT NULL, who TEXT NOT NULL, role TEXT NOT NULL, action TEXT "
                           "NOT NULL, detail TEXT NOT NULL);"
                           "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                           "INSERT INTO idempotency VALUES ('A1/k', '{\"id\":\"T-1\"}');"
                           "PRAGMA user_version=1;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = OpenSqliteStore(path);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto r = (*s)->GetIdempotency("A1/k");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->digest, "");
  EXPECT_GT((*r)->at_unix_ms, 1700000000000);  // the migration's wall time
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
