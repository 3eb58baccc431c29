#include <sqlite3.h>

#include <mutex>

#include "store/store.hpp"

namespace sitepower::store {
namespace {

// Schema migrations, applied in order; user_version records how many ran.
const char* const kMigrations[] = {
    R"sql(
    CREATE TABLE task_events (
      crew TEXT NOT NULL, seq INTEGER NOT NULL, at_ms INTEGER NOT NULL, task_id TEXT NOT NULL,
      kind TEXT NOT NULL, task_json TEXT NOT NULL, message TEXT NOT NULL,
      PRIMARY KEY (crew, seq));
    CREATE TABLE tasks (id TEXT PRIMARY KEY, json TEXT NOT NULL);
    CREATE TABLE idempotency (key TEXT PRIMARY KEY, reply TEXT NOT NULL);
    CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,
      who TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    )sql",
    // 2: an idempotency key is bound to a digest of its request and expires.
    // Older records keep an empty digest and count from the migration.
    R"sql(
    ALTER TABLE idempotency ADD COLUMN digest TEXT NOT NULL DEFAULT '';
    ALTER TABLE idempotency ADD COLUMN at_ms INTEGER NOT NULL DEFAULT 0;
    UPDATE idempotency SET at_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);
    CREATE INDEX idempotency_at ON idempotency (at_ms);
    )sql",
};

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteStore() override { sqlite3_close(db_); }

  core::Status Migrate() {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto st = Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
        !st.ok())
      return st;
    int version = 0;
    {
      sqlite3_stmt* s = nullptr;
      sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &s, nullptr);
      if (s && sqlite3_step(s) == SQLITE_ROW) version = sqlite3_column_int(s, 0);
      sqlite3_finalize(s);
    }
    const int target = static_cast<int>(std::size(kMigrations));
    if (version > target)
      return core::Status::FailedPrecondition(
          path_ + ": schema version " + std::to_string(version) +
          " is newer than this sitepowerd (" + std::to_string(target) + ")");
    for (int v = version; v < target; ++v) {
      std::string sql = std::string("BEGIN;") + kMigrations[v] +
                        "PRAGMA user_version=" + std::to_string(v + 1) + ";COMMIT;";
      if (auto st = Exec(sql); !st.ok()) {
        Exec("ROLLBACK;");
        return st.WithContext("migration " + std::to_string(v + 1));
      }
    }
    return core::Status::Ok();
  }

  core::Status Apply(const Commit& c) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto st = Exec("BEGIN IMMEDIATE;"); !st.ok()) return st;
    core::Status st = ApplyLocked(c);
    if (!st.ok()) {
      Exec("ROLLBACK;");
      return st;
    }
    return Exec("COMMIT;");
  }

  core::Result<std::vector<TaskEventRecord>> LoadTaskEvents() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<TaskEventRecord> out;
    auto st = Query(
        "SELECT crew, seq, at_ms, task_id, kind, task_json, message FROM task_events ORDER BY "
        "crew, seq",
        {}, [&out](sqlite3_stmt* s) {
          out.push_back({Text(s, 0), static_cast<uint64_t>(sqlite3_column_int64(s, 1)),
                         sqlite3_column_int64(s, 2), Text(s, 3), Text(s, 4), Text(s, 5),
                         Text(s, 6)});
        });
    if (!st.ok()) return st;
    return out;
  }

  core::Result<std::map<std::string, std::string>> LoadTasks() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, std::string> out;
    auto st = Query("SELECT id, json FROM tasks", {},
                    [&out](sqlite3_stmt* s) { out[Text(s, 0)] = Text(s, 1); });
    if (!st.ok()) return st;
    return out;
  }

  core::Result<std::optional<IdempotencyRecord>> GetIdempotency(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<IdempotencyRecord> out;
    auto st = Query(
        "SELECT key, digest, reply, at_ms FROM idempotency WHERE key = ?1", {key},
        [&out](sqlite3_stmt* s) {
          out = IdempotencyRecord{Text(s, 0), Text(s, 1), Text(s, 2), sqlite3_column_int64(s, 3)};
        });
    if (!st.ok()) return st;
    return out;
  }

  core::Result<std::vector<AuditRecord>> LoadAudit(size_t newest_n) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<AuditRecord> out;
    auto st = Query("SELECT at_ms, who, role, action, detail FROM audit ORDER BY id DESC LIMIT ?1",
                    {std::to_string(newest_n)}, [&out](sqlite3_stmt* s) {
                      out.push_back({sqlite3_column_int64(s, 0), Text(s, 1), Text(s, 2), Text(s, 3),
                                     Text(s, 4)});
                    });
    if (!st.ok()) return st;
    return out;
  }

  core::Result<std::map<std::string, std::string>> LoadKv(const std::string& prefix) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, std::string> out;
    auto st = Query("SELECT key, value FROM kv WHERE substr(key, 1, length(?1)) = ?1", {prefix},
                    [&out](sqlite3_stmt* s) { out[Text(s, 0)] = Text(s, 1); });
    if (!st.ok()) return st;
    return out;
  }

 private:
  static std::string Text(sqlite3_stmt* s, int col) {
    const unsigned char* t = sqlite3_column_text(s, col);
    return t ? reinterpret_cast<const char*>(t) : "";
  }

  core::Status Error(const std::string& what) const {
    return core::Status::Unavailable(path_ + ": " + what + ": " + sqlite3_errmsg(db_));
  }

  core::Status Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      return core::Status::Unavailable(path_ + ": " + msg);
    }
    return core::Status::Ok();
  }

  template <typename RowFn>
  core::Status Query(const char* sql, const std::vector<std::string>& args, RowFn on_row) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) return Error("prepare");
    for (size_t i = 0; i < args.size(); ++i)
      sqlite3_bind_text(s, static_cast<int>(i + 1), args[i].c_str(), -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) on_row(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? core::Status::Ok() : Error("query");
  }

  core::Status Run(const char* sql, const std::vector<std::string>& text,
                   const std::vector<int64_t>& ints = {}) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) return Error("prepare");
    int i = 1;
    for (const auto& t : text) sqlite3_bind_text(s, i++, t.c_str(), -1, SQLITE_TRANSIENT);
    for (int64_t v : ints) sqlite3_bind_int64(s, i++, v);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? core::Status::Ok() : Error("write");
  }

  core::Status ApplyLocked(const Commit& c) {
    for (const auto& e : c.events) {
      auto st =
          Run("INSERT INTO task_events (crew, task_id, kind, task_json, message, seq, at_ms) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
              {e.crew, e.task_id, e.kind, e.task_json, e.message},
              {static_cast<int64_t>(e.seq), e.at_unix_ms});
      if (!st.ok()) return st.WithContext("task event " + e.crew + "#" + std::to_string(e.seq));
    }
    for (const auto& [id, json] : c.tasks)
      if (auto st = Run("INSERT OR REPLACE INTO tasks (id, json) VALUES (?1, ?2)", {id, json});
          !st.ok())
        return st;
    if (c.expire_idempotency_before_ms > 0)
      if (auto st =
              Run("DELETE FROM idempotency WHERE at_ms < ?1", {}, {c.expire_idempotency_before_ms});
          !st.ok())
        return st.WithContext("expiring idempotency keys");
    if (const auto& i = c.idempotency)
      if (auto st = Run("INSERT OR REPLACE INTO idempotency (key, digest, reply, at_ms) "
                        "VALUES (?1, ?2, ?3, ?4)",
                        {i->key, i->digest, i->reply}, {i->at_unix_ms});
          !st.ok())
        return st.WithContext("idempotency key " + i->key);
    for (const auto& a : c.audit)
      if (auto st = Run(
              "INSERT INTO audit (who, role, action, detail, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
              {a.who, a.role, a.action, a.detail}, {a.at_unix_ms});
          !st.ok())
        return st;
    for (const auto& [k, v] : c.kv)
      if (auto st = Run("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)", {k, v}); !st.ok())
        return st;
    return core::Status::Ok();
  }

  std::mutex mu_;  // serialises every use of db_
  sqlite3* db_;
  std::string path_;
};

}  // namespace

core::Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return core::Status::Unavailable(path + ": cannot open: " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  auto store = std::make_unique<SqliteStore>(db, path);
  if (auto st = store->Migrate(); !st.ok()) return st;
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace sitepower::store
