#include "tasks/task_ledger.hpp"

#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

namespace sitepower::tasks {

using json = nlohmann::json;

std::string_view TaskStatusName(TaskStatus s) {
  switch (s) {
    case TaskStatus::kAssigned:
      return "assigned";
    case TaskStatus::kAccepted:
      return "accepted";
    case TaskStatus::kEnRoute:
      return "en_route";
    case TaskStatus::kOnSite:
      return "on_site";
    case TaskStatus::kGeneratorRunning:
      return "generator_running";
    case TaskStatus::kReleased:
      return "released";
    case TaskStatus::kCancelled:
      return "cancelled";
    case TaskStatus::kDeclined:
      return "declined";
  }
  return "assigned";
}

bool IsTerminal(TaskStatus s) {
  return s == TaskStatus::kReleased || s == TaskStatus::kCancelled || s == TaskStatus::kDeclined;
}

std::string_view EventKindName(EventKind k) {
  switch (k) {
    case EventKind::kAssigned:
      return "assigned";
    case EventKind::kUpdated:
      return "updated";
    case EventKind::kStatus:
      return "status";
    case EventKind::kCancelled:
      return "cancelled";
    case EventKind::kReassigned:
      return "reassigned";
  }
  return "updated";
}

namespace {

constexpr auto kNotifyDrift = std::chrono::minutes(5);
constexpr auto kDeadlineDrift = std::chrono::minutes(10);

// Whether moving `from` to `to` is news to a crew at `now`: at least `floor`
// and at least 15 % of the time still to go (an ETA three hours away that
// moves by six minutes is not worth a buzz on the phone).
bool Moved(core::TimePoint from, core::TimePoint to, core::TimePoint now, core::Millis floor) {
  const auto change = std::chrono::abs(to - from);
  const auto ahead = from > now ? from - now : core::Millis{0};
  return change >= floor && change * 100 >= ahead * 15;
}
// An ETA that moved one way is not pushed back the other way within this
// time (only the order, the crew or the deadline can make it sooner): a
// technician whose phone contradicts itself stops reading it.
constexpr auto kReversalHold = std::chrono::minutes(10);

int64_t Ms(core::TimePoint t) { return t.time_since_epoch().count(); }
core::TimePoint FromMs(int64_t ms) { return core::TimePoint(core::Millis(ms)); }

std::optional<TaskStatus> ParseStatus(const std::string& s) {
  for (TaskStatus t : {TaskStatus::kAssigned, TaskStatus::kAccepted, TaskStatus::kEnRoute,
                       TaskStatus::kOnSite, TaskStatus::kGeneratorRunning, TaskStatus::kReleased,
                       TaskStatus::kCancelled, TaskStatus::kDeclined})
    if (TaskStatusName(t) == s) return t;
  return std::nullopt;
}

std::optional<EventKind> ParseKind(const std::string& s) {
  for (EventKind k : {EventKind::kAssigned, EventKind::kUpdated, EventKind::kStatus,
                      EventKind::kCancelled, EventKind::kReassigned})
    if (EventKindName(k) == s) return k;
  return std::nullopt;
}

int Rank(TaskStatus s) {
  switch (s) {
    case TaskStatus::kAssigned:
      return 0;
    case TaskStatus::kAccepted:
      return 1;
    case TaskStatus::kEnRoute:
      return 2;
    case TaskStatus::kOnSite:
      return 3;
    case TaskStatus::kGeneratorRunning:
      return 4;
    default:
      return 5;
  }
}

// Why a crew may not move a task from `from` to `to`, or empty if it may.
std::string RefuseTransition(TaskStatus from, TaskStatus to) {
  if (IsTerminal(from))
    return "task is already " + std::string(TaskStatusName(from)) + "; nothing can change it";
  if (to == TaskStatus::kReleased || to == TaskStatus::kCancelled || to == TaskStatus::kAssigned)
    return "a crew cannot set " + std::string(TaskStatusName(to)) + "; the daemon does";
  if (to == TaskStatus::kDeclined) {
    if (from == TaskStatus::kGeneratorRunning)
      return "the generator already runs; decline is no longer possible";
    return "";
  }
  if (Rank(to) <= Rank(from))
    return "cannot go from " + std::string(TaskStatusName(from)) + " back to " +
           std::string(TaskStatusName(to));
  if (from == TaskStatus::kAssigned && to != TaskStatus::kAccepted) return "accept the task first";
  if (to == TaskStatus::kGeneratorRunning && from != TaskStatus::kOnSite)
    return "report on_site before generator_running";
  return "";
}

}  // namespace

std::string TaskToJson(const Task& t) {
  return json{{"id", t.id},
              {"site", t.site},
              {"site_name", t.site_name},
              {"lat", t.location.lat},
              {"lon", t.location.lon},
              {"tier", core::TierName(t.tier)},
              {"crew", t.crew},
              {"status", TaskStatusName(t.status)},
              {"order", t.order},
              {"eta", Ms(t.eta)},
              {"deadline", Ms(t.deadline)},
              {"p10", t.p10_min},
              {"p50", t.p50_min},
              {"p90", t.p90_min},
              {"hookup_min", t.hookup_min},
              {"reason", t.reason},
              {"decline_reason", t.decline_reason},
              {"created", Ms(t.created)},
              {"updated", Ms(t.updated)},
              {"assigned_at", Ms(t.assigned_at)}}
      .dump();
}

core::Result<Task> TaskFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return core::Status::InvalidArgument("task record is not a JSON object");
  try {
    Task t;
    t.id = j.at("id");
    t.site = j.at("site");
    t.site_name = j.value("site_name", "");
    t.location = {j.value("lat", 0.0), j.value("lon", 0.0)};
    t.tier = core::ParseTier(j.value("tier", "standard")).value_or(core::Tier::kStandard);
    t.crew = j.at("crew");
    auto st = ParseStatus(j.at("status"));
    if (!st) return core::Status::InvalidArgument("task " + t.id + ": unknown status");
    t.status = *st;
    t.order = j.value("order", 0);
    t.eta = FromMs(j.value("eta", int64_t{0}));
    t.deadline = FromMs(j.value("deadline", int64_t{0}));
    t.p10_min = j.value("p10", 0.0);
    t.p50_min = j.value("p50", 0.0);
    t.p90_min = j.value("p90", 0.0);
    t.hookup_min = j.value("hookup_min", 0.0);
    t.reason = j.value("reason", "");
    t.decline_reason = j.value("decline_reason", "");
    t.created = FromMs(j.value("created", int64_t{0}));
    t.updated = FromMs(j.value("updated", int64_t{0}));
    t.assigned_at = FromMs(j.value("assigned_at", int64_t{0}));
    return t;
  } catch (const json::exception& e) {
    return core::Status::InvalidArgument(std::string("task record: ") + e.what());
  }
}

std::string UpdateDigest(const core::TaskId& id, TaskStatus to, const std::string& reason) {
  std::string canonical;
  for (std::string_view field :
       {std::string_view(id), TaskStatusName(to), std::string_view(reason)})
    canonical += std::to_string(field.size()) + ":" + std::string(field) + ";";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(canonical.data(), canonical.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

bool ReportedByCrew(const TaskEvent& e) {
  // Update() writes "crew <id>: <status>"; nothing else starts that way.
  return e.kind == EventKind::kStatus && e.message.rfind("crew " + e.crew + ":", 0) == 0;
}

TaskLedger::TaskLedger(store::Store& store, const core::Clock& clock, core::Millis idempotency_ttl)
    : store_(store), clock_(clock), idempotency_ttl_(idempotency_ttl) {}

core::Status TaskLedger::Recover() {
  auto tasks = store_.LoadTasks();
  if (!tasks.ok()) return tasks.status();
  auto events = store_.LoadTaskEvents();
  if (!events.ok()) return events.status();
  std::lock_guard<std::mutex> lock(mu_);
  tasks_.clear();
  open_by_site_.clear();
  history_.clear();
  for (const auto& [id, text] : *tasks) {
    auto t = TaskFromJson(text);
    if (!t.ok()) return t.status().WithContext("store task " + id);
    tasks_[id] = *t;
    if (!IsTerminal(t->status)) open_by_site_[t->site] = id;
    unsigned long n = 0;
    if (std::sscanf(id.c_str(), "T-%lu", &n) == 1 && n >= next_task_) next_task_ = n + 1;
  }
  for (const auto& r : *events) {
    auto t = TaskFromJson(r.task_json);
    auto kind = ParseKind(r.kind);
    if (!t.ok() || !kind)
      return core::Status::InvalidArgument("store event " + r.crew + "#" + std::to_string(r.seq) +
                                           " is unreadable");
    auto& h = history_[r.crew];
    if (r.seq != h.size() + 1)
      return core::Status::Internal("store: crew " + r.crew + " events have a gap before seq " +
                                    std::to_string(r.seq));
    h.push_back({r.crew, r.seq, FromMs(r.at_unix_ms), *kind, *t, r.message});
  }
  return core::Status::Ok();
}

void TaskLedger::Emit(std::vector<TaskEvent>& out, const core::CrewId& crew, EventKind kind,
                      const Task& t, std::string message) {
  uint64_t seq = history_[crew].size() + 1;
  for (const auto& e : out)
    if (e.crew == crew) seq = std::max(seq, e.seq + 1);
  out.push_back({crew, seq, clock_.Now(), kind, t, std::move(message)});
}

core::Status TaskLedger::CommitLocked(const std::vector<TaskEvent>& events,
                                      std::optional<store::IdempotencyRecord> idempotency,
                                      std::vector<store::AuditRecord> audit) {
  store::Commit c;
  std::map<core::TaskId, std::string> latest;
  for (const auto& e : events) {
    std::string tj = TaskToJson(e.task);
    c.events.push_back(
        {e.crew, e.seq, Ms(e.at), e.task.id, std::string(EventKindName(e.kind)), tj, e.message});
    latest[e.task.id] = tj;
  }
  for (auto& [id, tj] : latest) c.tasks.emplace_back(id, std::move(tj));
  if (idempotency)
    c.expire_idempotency_before_ms = idempotency->at_unix_ms - idempotency_ttl_.count();
  c.idempotency = std::move(idempotency);
  c.audit = std::move(audit);
  if (c.events.empty() && !c.idempotency && c.audit.empty()) return core::Status::Ok();
  if (auto st = store_.Apply(c); !st.ok()) return st;
  // Durable: now make it visible.
  for (const auto& e : events) {
    history_[e.crew].push_back(e);
    tasks_[e.task.id] = e.task;
  }
  for (const auto& e : events) {
    if (IsTerminal(e.task.status)) {
      auto it = open_by_site_.find(e.task.site);
      if (it != open_by_site_.end() && it->second == e.task.id) open_by_site_.erase(it);
      eta_pushed_.erase(e.task.id);
    } else {
      open_by_site_[e.task.site] = e.task.id;
    }
  }
  return core::Status::Ok();
}

void TaskLedger::Notify(const std::vector<TaskEvent>& events) {
  std::vector<Listener> ls;
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    for (const auto& [id, l] : listeners_) ls.push_back(l);
  }
  for (const auto& e : events)
    for (const auto& l : ls) l(e);
}

std::vector<TaskEvent> TaskLedger::ApplyPlan(const std::vector<Assignment>& plan,
                                             const std::string& why) {
  std::unique_lock<std::mutex> lock(mu_);
  const core::TimePoint now = clock_.Now();
  std::vector<TaskEvent> out;
  std::map<core::SiteId, const Assignment*> wanted;
  for (const auto& a : plan) wanted[a.site] = &a;
  // Open tasks whose site left the plan are cancelled (unless work has begun on site).
  for (const auto& [site, id] : open_by_site_) {
    Task t = tasks_.at(id);
    if (wanted.count(site) || t.status == TaskStatus::kOnSite ||
        t.status == TaskStatus::kGeneratorRunning)
      continue;
    t.status = TaskStatus::kCancelled;
    t.order = 0;
    t.updated = now;
    Emit(out, t.crew, EventKind::kCancelled, t, "cancelled: no longer in the plan (" + why + ")");
  }
  for (const auto& a : plan) {
    auto open = open_by_site_.find(a.site);
    if (open == open_by_site_.end()) {
      Task t;
      char id[32];
      std::snprintf(id, sizeof id, "T-%06lu", static_cast<unsigned long>(next_task_++));
      t.id = id;
      t.site = a.site;
      t.site_name = a.site_name;
      t.location = a.location;
      t.tier = a.tier;
      t.crew = a.crew;
      t.order = a.order;
      t.eta = a.eta;
      t.deadline = a.deadline;
      t.p10_min = a.p10_min;
      t.p50_min = a.p50_min;
      t.p90_min = a.p90_min;
      t.hookup_min = a.hookup_min;
      t.reason = a.reason;
      t.created = t.updated = t.assigned_at = now;
      Emit(out, a.crew, EventKind::kAssigned, t, "new task: " + a.reason);
      continue;
    }
    Task t = tasks_.at(open->second);
    if (t.crew != a.crew) {
      if (t.status == TaskStatus::kOnSite || t.status == TaskStatus::kGeneratorRunning) continue;
      Task away = t;
      away.status = TaskStatus::kCancelled;
      away.order = 0;
      away.updated = now;
      Emit(out, t.crew, EventKind::kReassigned, away,
           "reassigned to crew " + a.crew + " (" + why + ")");
      t.crew = a.crew;
      t.status = TaskStatus::kAssigned;
      t.assigned_at = now;
      eta_pushed_.erase(t.id);  // a new crew: its own first ETA
      t.order = a.order;
      t.eta = a.eta;
      t.deadline = a.deadline;
      t.reason = a.reason;
      t.p10_min = a.p10_min;
      t.p50_min = a.p50_min;
      t.p90_min = a.p90_min;
      t.updated = now;
      Emit(out, a.crew, EventKind::kAssigned, t, "task moved to you: " + a.reason);
      continue;
    }
    // Tell the crew only what matters to it: a new position in its route, or an
    // ETA or deadline that moved by minutes; smaller drift is kept quietly.
    const int direction = a.eta > t.eta ? 1 : -1;
    const auto pushed = eta_pushed_.find(t.id);
    const bool reversal = pushed != eta_pushed_.end() && pushed->second.direction == -direction &&
                          now - pushed->second.at < kReversalHold;
    const bool eta_moved = Moved(t.eta, a.eta, now, kNotifyDrift) && !reversal;
    const bool reordered = t.order != a.order;
    const bool significant =
        reordered || eta_moved || Moved(t.deadline, a.deadline, now, kDeadlineDrift);
    if (!significant) {
      Task& live = tasks_.at(t.id);
      live.reason = a.reason;
      live.p10_min = a.p10_min;
      live.p50_min = a.p50_min;
      live.p90_min = a.p90_min;
      continue;
    }
    if (t.eta != a.eta && (eta_moved || reordered)) {
      eta_pushed_[t.id] = {direction, now};
      t.eta = a.eta;
    }
    t.order = a.order;
    t.deadline = a.deadline;
    t.reason = a.reason;
    t.p10_min = a.p10_min;
    t.p50_min = a.p50_min;
    t.p90_min = a.p90_min;
    t.updated = now;
    Emit(out, t.crew, EventKind::kUpdated, t, "updated: " + a.reason);
  }
  // The reassigned-away event replaces the old task record for the old crew's
  // history only; the task itself continues under the new crew.
  if (auto st = CommitLocked(out, std::nullopt, {}); !st.ok()) {
    // Nothing was told to anyone; the next plan will try again.
    return {};
  }
  std::lock_guard<std::mutex> order(notify_mu_);
  lock.unlock();
  Notify(out);
  return out;
}

core::Result<TaskLedger::UpdateResult> TaskLedger::Update(const core::CrewId& crew,
                                                          const core::TaskId& id, TaskStatus to,
                                                          const std::string& reason,
                                                          const std::string& key, const Actor& by) {
  if (key.empty()) return core::Status::InvalidArgument("idempotency_key: required");
  if (to == TaskStatus::kDeclined && reason.empty())
    return core::Status::InvalidArgument("reason: required when declining");
  const std::string idem_key = crew + "/" + key;
  const std::string digest = UpdateDigest(id, to, reason);
  std::unique_lock<std::mutex> lock(mu_);
  const core::TimePoint now = clock_.Now();
  auto prior = store_.GetIdempotency(idem_key);
  if (!prior.ok()) return prior.status();
  if (prior->has_value() && (*prior)->at_unix_ms >= Ms(now) - idempotency_ttl_.count()) {
    auto t = TaskFromJson((*prior)->reply);
    if (!t.ok()) return t.status();
    // Records from before digests: the answer itself tells the task and status.
    const bool same =
        (*prior)->digest.empty() ? t->id == id && t->status == to : (*prior)->digest == digest;
    if (!same)
      return core::Status::InvalidArgument(
          "idempotency_key: idempotency key reused for another request (it answered " + t->id +
          " " + std::string(TaskStatusName(t->status)) + "); use a new key for each update");
    return UpdateResult{*t, true};
  }
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return core::Status::NotFound("task_id: no task " + id);
  Task t = it->second;
  if (t.crew != crew)
    return core::Status::PermissionDenied("task " + id + " belongs to another crew");
  if (std::string why = RefuseTransition(t.status, to); !why.empty())
    return core::Status::FailedPrecondition("task " + id + ": " + why);
  t.status = to;
  t.updated = now;
  if (to == TaskStatus::kDeclined) {
    t.decline_reason = reason;
    t.order = 0;
  }
  const bool for_crew = by.role == Actor::Role::kNoc;
  const std::string acting = for_crew ? "noc " + by.name + " acting for " + crew : "";
  std::vector<TaskEvent> out;
  std::string msg = "crew " + crew + ": " + std::string(TaskStatusName(to));
  if (!reason.empty()) msg += " (" + reason + ")";
  if (for_crew) msg += " [" + acting + "]";
  Emit(out, crew, EventKind::kStatus, t, msg);
  std::string detail = id + " " + t.site + (reason.empty() ? "" : ": " + reason);
  store::AuditRecord audit{Ms(now), for_crew ? by.name : crew, for_crew ? "noc" : "crew",
                           "task." + std::string(TaskStatusName(to)),
                           for_crew ? acting + ": " + detail : detail};
  store::IdempotencyRecord idem{idem_key, digest, TaskToJson(t), Ms(now)};
  if (auto st = CommitLocked(out, std::move(idem), {audit}); !st.ok()) return st;
  std::lock_guard<std::mutex> order(notify_mu_);
  lock.unlock();
  Notify(out);
  return UpdateResult{t, false};
}

void TaskLedger::OnGeneratorRunning(const core::SiteId& site) {
  std::unique_lock<std::mutex> lock(mu_);
  auto open = open_by_site_.find(site);
  if (open == open_by_site_.end()) return;
  Task t = tasks_.at(open->second);
  if (t.status == TaskStatus::kGeneratorRunning) return;
  t.status = TaskStatus::kGeneratorRunning;
  t.updated = clock_.Now();
  std::vector<TaskEvent> out;
  Emit(out, t.crew, EventKind::kStatus, t, "controller shows the generator carrying the load");
  if (!CommitLocked(out, std::nullopt, {}).ok()) return;
  std::lock_guard<std::mutex> order(notify_mu_);
  lock.unlock();
  Notify(out);
}

void TaskLedger::OnMainsRestored(const core::SiteId& site) {
  std::unique_lock<std::mutex> lock(mu_);
  auto open = open_by_site_.find(site);
  if (open == open_by_site_.end()) return;
  Task t = tasks_.at(open->second);
  const bool running = t.status == TaskStatus::kGeneratorRunning;
  t.status = running ? TaskStatus::kReleased : TaskStatus::kCancelled;
  t.order = 0;
  t.updated = clock_.Now();
  std::vector<TaskEvent> out;
  Emit(out, t.crew, running ? EventKind::kStatus : EventKind::kCancelled, t,
       running ? "mains back: generator released" : "mains back before arrival: cancelled");
  if (!CommitLocked(out, std::nullopt, {}).ok()) return;
  std::lock_guard<std::mutex> order(notify_mu_);
  lock.unlock();
  Notify(out);
}

std::vector<Task> TaskLedger::OpenTasks() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Task> out;
  for (const auto& [site, id] : open_by_site_) out.push_back(tasks_.at(id));
  std::sort(out.begin(), out.end(), [](const Task& a, const Task& b) {
    return a.crew != b.crew ? a.crew < b.crew : a.order < b.order;
  });
  return out;
}

std::vector<Task> TaskLedger::CrewTasks(const core::CrewId& crew) const {
  std::vector<Task> out;
  for (auto& t : OpenTasks())
    if (t.crew == crew) out.push_back(std::move(t));
  return out;
}

std::vector<TaskEvent> TaskLedger::EventsAfter(const core::CrewId& crew, uint64_t after_seq) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = history_.find(crew);
  if (it == history_.end() || after_seq >= it->second.size()) return {};
  return std::vector<TaskEvent>(it->second.begin() + static_cast<long>(after_seq),
                                it->second.end());
}

uint64_t TaskLedger::LastSeq(const core::CrewId& crew) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = history_.find(crew);
  return it == history_.end() ? 0 : it->second.size();
}

std::vector<Task> TaskLedger::UnacknowledgedSince(core::TimePoint cutoff) const {
  std::vector<Task> out;
  for (auto& t : OpenTasks())
    if (t.status == TaskStatus::kAssigned && t.assigned_at < cutoff) out.push_back(std::move(t));
  return out;
}

uint64_t TaskLedger::Subscribe(Listener l) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  listeners_[next_listener_] = std::move(l);
  return next_listener_++;
}

void TaskLedger::Unsubscribe(uint64_t id) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  listeners_.erase(id);
}

}  // namespace sitepower::tasks
