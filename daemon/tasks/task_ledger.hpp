// The task ledger: every generator task, its lifecycle, and each crew's event
// stream with gap-free sequence numbers. Every change is committed to the
// store before anyone is told (listeners, replies), so what a crew saw
// survives kill -9. Thread-safe: mu_ guards all state; listeners are called
// after the lock is released, in event order.
//
// Lifecycle: assigned -> accepted -> en_route -> on_site -> generator_running
// -> released; cancelled and declined end a task early. Crews may move their
// own tasks forward (skipping en_route is fine) or decline them before the
// generator runs; released and cancelled are the system's.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/geo.hpp"
#include "core/site.hpp"
#include "core/status.hpp"
#include "core/time.hpp"
#include "store/store.hpp"

namespace sitepower::tasks {

enum class TaskStatus {
  kAssigned,
  kAccepted,
  kEnRoute,
  kOnSite,
  kGeneratorRunning,
  kReleased,
  kCancelled,
  kDeclined
};
std::string_view TaskStatusName(TaskStatus s);  // "assigned", "en_route", ...
bool IsTerminal(TaskStatus s);

struct Task {
  core::TaskId id;
  core::SiteId site;
  std::string site_name;
  core::LatLon location;
  core::Tier tier = core::Tier::kStandard;
  core::CrewId crew;
  TaskStatus status = TaskStatus::kAssigned;
  int order = 0;
  core::TimePoint eta{}, deadline{};
  double p10_min = 0, p50_min = 0, p90_min = 0;
  double hookup_min = 0;
  std::string reason;
  std::string decline_reason;
  core::TimePoint created{}, updated{};
  core::TimePoint assigned_at{};  // when the current crew got it (for escalation)
};

enum class EventKind { kAssigned, kUpdated, kStatus, kCancelled, kReassigned };
std::string_view EventKindName(EventKind k);

struct TaskEvent {
  core::CrewId crew;
  uint64_t seq = 0;
  core::TimePoint at{};
  EventKind kind = EventKind::kAssigned;
  Task task;
  std::string message;
};

// True when the event records a crew's own report (not the planner or telemetry).
bool ReportedByCrew(const TaskEvent& e);

struct Assignment {
  core::SiteId site;
  std::string site_name;
  core::LatLon location;
  core::Tier tier = core::Tier::kStandard;
  core::CrewId crew;
  int order = 0;
  core::TimePoint eta{}, deadline{};
  double p10_min = 0, p50_min = 0, p90_min = 0;
  double hookup_min = 0;
  std::string reason;
};

// Who sends an update: the crew itself, or a NOC operator acting for it
// (audited as "noc <operator> acting for <crew>").
struct Actor {
  enum class Role { kCrew, kNoc } role = Role::kCrew;
  std::string name;  // the crew id, or the operator's name
};

// How long an idempotency key is remembered (ledger clock): a phone's offline
// queue is flushed well within it; afterwards the key may be used anew.
inline constexpr std::chrono::hours kIdempotencyTtl{72};

class TaskLedger {
 public:
  TaskLedger(store::Store& store, const core::Clock& clock,
             core::Millis idempotency_ttl = kIdempotencyTtl);

  core::Status Recover();  // reload tasks and sequences from the store

  // Makes open tasks match the plan. New site -> ASSIGNED; same crew ->
  // UPDATED only if order/eta/deadline/reason changed; another crew ->
  // REASSIGNED (old crew) + ASSIGNED (new crew); an open task whose site is not
  // in the plan -> CANCELLED. Tasks on site or with a running generator are
  // never moved or cancelled by a plan. Returns the events (already stored).
  std::vector<TaskEvent> ApplyPlan(const std::vector<Assignment>& plan, const std::string& why);

  struct UpdateResult {
    Task task;
    bool duplicate = false;
  };
  // A crew's update, sent by `by` (the crew itself when by.name is empty).
  // Idempotency: the key is scoped to (crew, key) and bound to a digest of
  // (task, status, reason); the same key with the same request within the TTL
  // returns the first answer with duplicate = true (survives restarts), with
  // another request InvalidArgument ("idempotency key reused for another
  // request"), and is a new key after the TTL. Errors: NotFound (no such
  // task), PermissionDenied (another crew's task), FailedPrecondition
  // (impossible transition, with why), InvalidArgument (missing key, DECLINED
  // without reason, reused key).
  core::Result<UpdateResult> Update(const core::CrewId& crew, const core::TaskId& id, TaskStatus to,
                                    const std::string& reason, const std::string& idempotency_key,
                                    const Actor& by = {});

  void OnGeneratorRunning(const core::SiteId& site);  // telemetry closed loop
  void OnMainsRestored(const core::SiteId& site);     // release running, cancel the rest

  std::vector<Task> OpenTasks() const;  // non-terminal, by crew then order
  std::vector<Task> CrewTasks(const core::CrewId& crew) const;
  std::vector<TaskEvent> EventsAfter(const core::CrewId& crew, uint64_t after_seq) const;
  uint64_t LastSeq(const core::CrewId& crew) const;
  // ASSIGNED tasks given to their crew before `cutoff`: not acknowledged in time.
  std::vector<Task> UnacknowledgedSince(core::TimePoint cutoff) const;

  using Listener = std::function<void(const TaskEvent&)>;
  uint64_t Subscribe(Listener l);
  void Unsubscribe(uint64_t id);

 private:
  // Appends an event for `crew` (under mu_), to be committed with the batch.
  void Emit(std::vector<TaskEvent>& out, const core::CrewId& crew, EventKind kind, const Task& t,
            std::string message);
  // Commits events + tasks (+ idempotency, audit) and only then records them.
  core::Status CommitLocked(const std::vector<TaskEvent>& events,
                            std::optional<store::IdempotencyRecord> idempotency,
                            std::vector<store::AuditRecord> audit);
  void Notify(const std::vector<TaskEvent>& events);

  store::Store& store_;
  const core::Clock& clock_;
  const core::Millis idempotency_ttl_;
  mutable std::mutex mu_;  // guards everything below
  std::map<core::TaskId, Task> tasks_;
  std::map<core::SiteId, core::TaskId> open_by_site_;
  // The last ETA change pushed per open task: its direction and when, so a
  // plan that would move it back within kReversalHold is not pushed.
  struct EtaPush {
    int direction = 0;  // +1 later, -1 earlier
    core::TimePoint at{};
  };
  std::map<core::TaskId, EtaPush> eta_pushed_;
  std::map<core::CrewId, std::vector<TaskEvent>> history_;  // per crew, seq order
  uint64_t next_task_ = 1;
  std::mutex listeners_mu_;  // guards listeners_ (never held with mu_)
  std::map<uint64_t, Listener> listeners_;
  uint64_t next_listener_ = 1;
  std::mutex notify_mu_;  // keeps listener calls in commit order
};

// The digest an idempotency key is bound to: SHA-256 (hex) of the request's
// task id, status and reason, each length-prefixed.
std::string UpdateDigest(const core::TaskId& id, TaskStatus to, const std::string& reason);

// Task <-> JSON, for the store and for idempotent replies.
std::string TaskToJson(const Task& t);
core::Result<Task> TaskFromJson(const std::string& json);

}  // namespace sitepower::tasks
