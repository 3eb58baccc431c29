#include "drill/crew_sim.hpp"

#include <algorithm>
#include <cstdio>

namespace sitepower::drill {

namespace v1 = sitepower::v1;

CrewSim::CrewSim(CrewSimConfig config, const core::Clock& clock, OnGenerator on_generator)
    : cfg_(std::move(config)), clock_(clock), on_generator_(std::move(on_generator)) {
  stub_ = v1::CrewService::NewStub(grpc::CreateChannel(cfg_.server, cfg_.credentials));
  from_ = to_ = cfg_.location;
  generators_left_ = cfg_.generators;
}

CrewSim::~CrewSim() { Stop(); }

void CrewSim::Start() {
  stream_thread_ = std::thread([this]() { StreamLoop(); });
  work_thread_ = std::thread([this]() { WorkLoop(); });
}

void CrewSim::Stop() {
  if (stop_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stream_ctx_) stream_ctx_->TryCancel();
  }
  if (stream_thread_.joinable()) stream_thread_.join();
  if (work_thread_.joinable()) work_thread_.join();
}

void CrewSim::SetUnavailable() {
  unavailable_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  if (stream_ctx_) stream_ctx_->TryCancel();
}

void CrewSim::CutLink(core::TimePoint until) {
  std::lock_guard<std::mutex> lock(mu_);
  link_cut_until_ = until;
  if (stream_ctx_) stream_ctx_->TryCancel();
}

bool CrewSim::LinkUp(core::TimePoint now) const {
  return !link_cut_until_ || now >= *link_cut_until_;
}

StreamStats CrewSim::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

PlanChurn CrewSim::churn() const {
  std::lock_guard<std::mutex> lock(mu_);
  return churn_;
}

std::string CrewSim::Describe() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string s = cfg_.id + ": ";
  if (unavailable_) return s + "unavailable";
  switch (phase_) {
    case Phase::kIdle:
      s += tasks_.empty() ? "idle" : "ready";
      break;
    case Phase::kTravel:
      s += "to " + target_site_;
      break;
    case Phase::kHookup:
      s += "hooking up " + target_site_;
      break;
  }
  return s + " (" + std::to_string(generators_left_) + " gen)";
}

namespace {
std::string Fingerprint(const v1::TaskEvent& e) {
  return std::to_string(e.kind()) + "|" + e.task().task_id() + "|" +
         std::to_string(e.task().status()) + "|" + e.task().crew_id();
}
}  // namespace

HistoryCheck CrewSim::VerifyHistory() {
  std::map<uint64_t, std::string> received;
  uint64_t last;
  {
    std::lock_guard<std::mutex> lock(mu_);
    received = received_;
    last = last_seq_;
  }
  HistoryCheck out;
  out.checked = received.size();
  std::map<uint64_t, std::string> history;
  if (last > 0) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + cfg_.token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    ctx.set_wait_for_ready(true);  // the channel may still be reconnecting after a restart
    v1::SubscribeTasksRequest req;
    req.set_crew_id(cfg_.id);
    req.set_after_seq(0);
    auto reader = stub_->SubscribeTasks(&ctx, req);
    v1::TaskEvent ev;
    while (reader->Read(&ev)) {
      history[ev.seq()] = Fingerprint(ev);
      if (ev.seq() >= last) break;
    }
    ctx.TryCancel();
    reader->Finish();
  }
  for (const auto& [seq, fp] : received) {
    auto it = history.find(seq);
    if (it == history.end())
      ++out.missing;
    else if (it->second != fp)
      ++out.changed;
  }
  return out;
}

// Subscribes, resumes from the last seq after any drop, counts gaps and duplicates.
void CrewSim::StreamLoop() {
  while (!stop_ && !unavailable_) {
    bool up;
    {
      std::lock_guard<std::mutex> lock(mu_);
      up = LinkUp(clock_.Now());
    }
    if (!up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + cfg_.token);
    v1::SubscribeTasksRequest req;
    req.set_crew_id(cfg_.id);
    {
      std::lock_guard<std::mutex> lock(mu_);
      req.set_after_seq(last_seq_);
      stream_ctx_ = &ctx;
    }
    auto reader = stub_->SubscribeTasks(&ctx, req);
    v1::TaskEvent ev;
    while (reader->Read(&ev)) {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.events;
      if (ev.seq() <= last_seq_) {
        ++stats_.duplicates;
        continue;
      }
      if (ev.seq() != last_seq_ + 1) ++stats_.gaps;
      last_seq_ = ev.seq();
      received_[ev.seq()] = Fingerprint(ev);
      const auto& t = ev.task();
      CountChurn(ev);
      if (ev.kind() == v1::TaskEvent::KIND_REASSIGNED ||
          ev.kind() == v1::TaskEvent::KIND_CANCELLED || t.status() == v1::TASK_STATUS_RELEASED ||
          t.status() == v1::TASK_STATUS_CANCELLED || t.status() == v1::TASK_STATUS_DECLINED ||
          t.crew_id() != cfg_.id) {
        tasks_.erase(t.task_id());
      } else {
        tasks_[t.task_id()] = t;
      }
    }
    reader->Finish();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stream_ctx_ = nullptr;
    }
    if (!stop_) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void CrewSim::CountChurn(const v1::TaskEvent& ev) {
  const auto& t = ev.task();
  switch (ev.kind()) {
    case v1::TaskEvent::KIND_ASSIGNED:
      ++churn_.tasks;
      eta_[t.task_id()] = {t.eta_unix_ms(), 0, clock_.Now()};
      return;
    case v1::TaskEvent::KIND_REASSIGNED:
      ++churn_.reassigned;
      eta_.erase(t.task_id());
      return;
    case v1::TaskEvent::KIND_UPDATED: {
      ++churn_.updated;
      auto it = eta_.find(t.task_id());
      if (it == eta_.end() || t.eta_unix_ms() == it->second.eta_ms) return;
      const int dir = t.eta_unix_ms() > it->second.eta_ms ? 1 : -1;
      const core::TimePoint now = clock_.Now();
      if (it->second.direction != 0 && dir != it->second.direction &&
          now - it->second.at < std::chrono::minutes(10))
        ++churn_.eta_reversals;
      it->second = {t.eta_unix_ms(), dir, now};
      return;
    }
    default:
      return;
  }
}

void CrewSim::WorkLoop() {
  while (!stop_) {
    if (!unavailable_) Tick(clock_.Now());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

core::LatLon CrewSim::PositionAt(core::TimePoint now) const {
  if (phase_ != Phase::kTravel) return from_;
  double total = core::ToMinutes(arrive_ - depart_);
  double f = total <= 0 ? 1.0 : std::clamp(core::ToMinutes(now - depart_) / total, 0.0, 1.0);
  return {from_.lat + (to_.lat - from_.lat) * f, from_.lon + (to_.lon - from_.lon) * f};
}

void CrewSim::Send(const std::string& task, v1::TaskStatus status) {
  v1::UpdateTaskRequest r;
  r.set_crew_id(cfg_.id);
  r.set_task_id(task);
  r.set_status(status);
  // One key per intended update (a task can come back to this crew and need a
  // second ACCEPTED); a retry of the same queued request reuses it.
  r.set_idempotency_key(task + "/" + v1::TaskStatus_Name(status) + "/" +
                        std::to_string(++updates_sent_));
  outbox_.push_back(std::move(r));
}

// Sends queued updates in order; keeps them while the link or daemon is down.
void CrewSim::FlushUpdates(core::TimePoint now) {
  while (!outbox_.empty() && LinkUp(now)) {
    v1::UpdateTaskRequest req = outbox_.front();
    mu_.unlock();
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + cfg_.token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    v1::UpdateTaskResponse resp;
    grpc::Status st = stub_->UpdateTask(&ctx, req, &resp);
    mu_.lock();
    if (!st.ok() && (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                     st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED))
      return;  // daemon down or unreachable: retry later with the same key
    if (!st.ok() && st.error_code() != grpc::StatusCode::FAILED_PRECONDITION)
      std::fprintf(stderr, "drill: crew %s: update %s refused: %s\n", cfg_.id.c_str(),
                   req.task_id().c_str(), st.error_message().c_str());
    outbox_.erase(outbox_.begin());
  }
}

void CrewSim::Tick(core::TimePoint now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cfg_.available_from && now < *cfg_.available_from) return;
  // Acknowledge every new task at once: the phone has received it.
  for (auto& [id, t] : tasks_) {
    if (t.status() == v1::TASK_STATUS_ASSIGNED) {
      Send(id, v1::TASK_STATUS_ACCEPTED);
      t.set_status(v1::TASK_STATUS_ACCEPTED);
    }
  }
  // The crew follows the daemon: a task moved to another crew, cancelled, or
  // already carried by a generator (telemetry closed it) is dropped, even on site.
  if (phase_ != Phase::kIdle && target_task_) {
    auto it = tasks_.find(*target_task_);
    if (it == tasks_.end() || it->second.status() == v1::TASK_STATUS_GENERATOR_RUNNING) {
      from_ = PositionAt(now);
      phase_ = Phase::kIdle;
      target_task_.reset();
    } else if (phase_ == Phase::kTravel) {
      // On the road, a task the daemon put first (a VIP or key site that
      // cannot wait) diverts the crew; the one it was heading for stays next.
      for (const auto& [id, t] : tasks_)
        if (id != *target_task_ && t.status() != v1::TASK_STATUS_GENERATOR_RUNNING &&
            t.order() < it->second.order()) {
          from_ = PositionAt(now);
          phase_ = Phase::kIdle;
          target_task_.reset();
          break;
        }
    }
  }
  if (phase_ == Phase::kIdle && generators_left_ > 0) {
    const v1::Task* next = nullptr;
    for (const auto& [id, t] : tasks_)
      if (t.status() != v1::TASK_STATUS_GENERATOR_RUNNING && (!next || t.order() < next->order()))
        next = &t;
    if (next) {
      target_task_ = next->task_id();
      target_site_ = next->site_id();
      to_ = {next->location().lat(), next->location().lon()};
      depart_ = now;
      arrive_ =
          now + core::FromMinutes(core::TravelMinutes(from_, to_, cfg_.travel, cfg_.speed_kmh));
      hooked_until_ = arrive_ + core::FromMinutes(next->hookup_min());
      phase_ = Phase::kTravel;
      Send(next->task_id(), v1::TASK_STATUS_EN_ROUTE);
    }
  }
  if (phase_ == Phase::kTravel && now >= arrive_) {
    from_ = to_;
    phase_ = Phase::kHookup;
    Send(*target_task_, v1::TASK_STATUS_ON_SITE);
  }
  if (phase_ == Phase::kHookup && now >= hooked_until_) {
    Send(*target_task_, v1::TASK_STATUS_GENERATOR_RUNNING);
    --generators_left_;
    std::string site = target_site_;
    tasks_.erase(*target_task_);
    target_task_.reset();
    phase_ = Phase::kIdle;
    on_generator_(site, cfg_.id, hooked_until_);
  }
  FlushUpdates(now);
  // Location every few scenario minutes (and on every state change above).
  if (LinkUp(now) && now - last_location_report_ >= std::chrono::minutes(3)) {
    last_location_report_ = now;
    core::LatLon p = PositionAt(now);
    v1::ReportLocationRequest r;
    r.set_crew_id(cfg_.id);
    r.mutable_location()->set_lat(p.lat);
    r.mutable_location()->set_lon(p.lon);
    r.set_at_unix_ms(now.time_since_epoch().count());
    mu_.unlock();
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + cfg_.token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    v1::ReportLocationResponse resp;
    stub_->ReportLocation(&ctx, r, &resp);
    mu_.lock();
  }
}

}  // namespace sitepower::drill
