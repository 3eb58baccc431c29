// Persistence behind one interface. SQLite (WAL) is the embedded default; a
// region that outgrows one machine gets a second implementation on an existing
// engine (PostgreSQL or etcd), never a home-made one.
//
// Contract: Apply() is atomic and durable when it returns OK (committed to the
// WAL with synchronous=FULL), so anything a crew or operator is told after it
// survives kill -9. Thread-safe: calls are serialised internally.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.hpp"

namespace sitepower::store {

struct TaskEventRecord {
  std::string crew;
  uint64_t seq = 0;  // per crew, 1, 2, 3...
  int64_t at_unix_ms = 0;
  std::string task_id;
  std::string kind;       // "assigned", "updated", "status", "cancelled", "reassigned"
  std::string task_json;  // the task after the event
  std::string message;
};

struct AuditRecord {
  int64_t at_unix_ms = 0;
  std::string who;     // crew id or NOC operator name
  std::string role;    // "crew" | "noc" | "system"
  std::string action;  // e.g. "task.accept", "override.pin"
  std::string detail;
};

// The answer given to one idempotency key, bound to the request it answered.
struct IdempotencyRecord {
  std::string key;         // "<crew>/<client key>"
  std::string digest;      // of the request; empty in records written before schema 2
  std::string reply;       // what was answered (task JSON)
  int64_t at_unix_ms = 0;  // when it was first answered
};

// Everything one decision changes, written in one transaction.
struct Commit {
  std::vector<TaskEventRecord> events;
  std::vector<std::pair<std::string, std::string>> tasks;  // task id -> task JSON (upsert)
  std::optional<IdempotencyRecord> idempotency;            // upsert (an expired key is reused)
  // > 0: idempotency records answered before this time are deleted.
  int64_t expire_idempotency_before_ms = 0;
  std::vector<AuditRecord> audit;
  std::vector<std::pair<std::string, std::string>> kv;  // "namespace/key" -> value (upsert)
};

class Store {
 public:
  virtual ~Store() = default;
  virtual core::Status Apply(const Commit& commit) = 0;
  virtual core::Result<std::vector<TaskEventRecord>> LoadTaskEvents() = 0;  // by crew, seq
  virtual core::Result<std::map<std::string, std::string>> LoadTasks() = 0;
  // The record for `key`, expired or not (the caller knows the time); nullopt if none.
  virtual core::Result<std::optional<IdempotencyRecord>> GetIdempotency(const std::string& key) = 0;
  virtual core::Result<std::vector<AuditRecord>> LoadAudit(size_t newest_n) = 0;
  // Every "namespace/key" -> value whose key starts with `prefix`.
  virtual core::Result<std::map<std::string, std::string>> LoadKv(const std::string& prefix) = 0;
  core::Status AppendAudit(const AuditRecord& r) {
    Commit c;
    c.audit.push_back(r);
    return Apply(c);
  }
};

// Opens (creating if needed) and migrates the SQLite file at `path`.
// Errors name the path and SQLite's message.
core::Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace sitepower::store
