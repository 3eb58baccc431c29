// A simulated crew: a real gRPC client of the crew service. It subscribes to
// its tasks (resuming with its last seq after any drop), acknowledges new
// tasks, works the lowest-order one (en route, travel per FORMAT.md, on site,
// hook-up, generator running), reports its location, and queues its updates
// while its link is cut or the daemon is down.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include "core/geo.hpp"
#include "core/time.hpp"

#include "sitepower/v1/crew.grpc.pb.h"

namespace sitepower::drill {

struct CrewSimConfig {
  std::string id;
  std::string token;
  std::string server;  // host:port
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  core::LatLon location;
  int generators = 0;
  double speed_kmh = 40;
  core::TravelModel travel;
  std::optional<core::TimePoint> available_from;
};

struct StreamStats {
  uint64_t events = 0, gaps = 0, duplicates = 0;
};

// How calm the plan looked from this crew's phone: tasks it was given,
// UPDATED and REASSIGNED events, and ETA reversals (a task's pushed ETA that
// moved later and then, within 10 scenario minutes, earlier, or the other
// way round).
struct PlanChurn {
  uint64_t tasks = 0, updated = 0, reassigned = 0, eta_reversals = 0;
};

// Every event the crew received, checked against the daemon's history at the
// end of the drill (after any restart): missing = received but no longer in
// the history, changed = there with another content.
struct HistoryCheck {
  uint64_t checked = 0, missing = 0, changed = 0;
};

class CrewSim {
 public:
  // Called when the crew's generator starts carrying `site` (scenario time).
  using OnGenerator =
      std::function<void(const std::string& site, const std::string& crew, core::TimePoint at)>;
  CrewSim(CrewSimConfig config, const core::Clock& clock, OnGenerator on_generator);
  ~CrewSim();
  void Start();
  void Stop();
  void SetUnavailable();                // drops out for good
  void CutLink(core::TimePoint until);  // no network until then
  StreamStats stats() const;
  PlanChurn churn() const;
  // Reads the crew's whole history from the daemon (a fresh subscription from
  // seq 0) and compares it with what the crew received. Call before Stop().
  HistoryCheck VerifyHistory();
  std::string Describe() const;  // "A1: en route to WZ-06 (5 left)"

 private:
  struct Work;  // the task being worked on
  void StreamLoop();
  void WorkLoop();
  void Tick(core::TimePoint now);
  void CountChurn(const sitepower::v1::TaskEvent& ev);  // under mu_
  void Send(const std::string& task, sitepower::v1::TaskStatus status);
  void FlushUpdates(core::TimePoint now);
  bool LinkUp(core::TimePoint now) const;
  core::LatLon PositionAt(core::TimePoint now) const;

  CrewSimConfig cfg_;
  const core::Clock& clock_;
  OnGenerator on_generator_;
  std::unique_ptr<sitepower::v1::CrewService::Stub> stub_;
  std::thread stream_thread_, work_thread_;
  std::atomic<bool> stop_{false}, unavailable_{false};

  mutable std::mutex mu_;                             // guards everything below
  std::map<std::string, sitepower::v1::Task> tasks_;  // open tasks by id
  uint64_t last_seq_ = 0;
  StreamStats stats_;
  PlanChurn churn_;
  struct EtaTrack {
    int64_t eta_ms = 0;
    int direction = 0;     // +1 last move later, -1 earlier
    core::TimePoint at{};  // when that move arrived (scenario time)
  };
  std::map<std::string, EtaTrack> eta_;       // task id -> its pushed ETAs
  std::map<uint64_t, std::string> received_;  // seq -> kind|task|status|crew
  std::optional<core::TimePoint> link_cut_until_;
  grpc::ClientContext* stream_ctx_ = nullptr;
  std::vector<sitepower::v1::UpdateTaskRequest> outbox_;
  // Movement: from `from_` at `depart_` to the target, arriving at `arrive_`.
  std::optional<std::string> target_task_;
  std::string target_site_;
  core::LatLon from_, to_;
  core::TimePoint depart_{}, arrive_{}, hooked_until_{};
  enum class Phase { kIdle, kTravel, kHookup } phase_ = Phase::kIdle;
  int generators_left_ = 0;
  uint64_t updates_sent_ = 0;
  core::TimePoint last_location_report_{};
};

}  // namespace sitepower::drill
