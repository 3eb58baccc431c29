// The daemon's engine: joins telemetry, prediction, planning and tasks.
//
// Readings from the poller become per-site state (SiteStateTracker); a site on
// battery gets a runtime band (model); every event that can change the answer
// schedules a re-plan (dispatch), whose routes are reconciled into the task
// ledger (tasks), which pushes task events to crews (api). The NOC views (gRPC
// snapshot, dashboard JSON, /metrics) are rebuilt after each change.
//
// Threading: everything except the NocBackend methods and the ledger listener
// runs on the io_context thread. NocBackend methods may be called from gRPC
// threads; they read snapshots guarded by snapshot_mu_. The ledger listener
// only posts to the io_context.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "api/grpc_server.hpp"
#include "app/config.hpp"
#include "core/time.hpp"
#include "dispatch/planner.hpp"
#include "modbus/poller.hpp"
#include "model/runtime.hpp"
#include "tasks/task_ledger.hpp"
#include "web/web_server.hpp"

namespace sitepower::app {

class Engine final : public api::NocBackend, public web::WebBackend {
 public:
  Engine(boost::asio::io_context& io, const Config& config, const core::Clock& clock,
         tasks::TaskLedger& ledger, store::Store& store);
  ~Engine() override;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Where to push changes; set before Start(). Either may be empty.
  void SetPublishers(std::function<void()> grpc_publish,
                     std::function<void(std::string)> web_publish);
  // Tells the engine how to speed up polling of a site on battery.
  void SetFastPollHook(std::function<void(const core::SiteId&, bool)> hook);

  // Restores persisted site state, subscribes to the ledger, starts timers.
  void Start();
  void Stop();

  // Poller sink (io thread).
  void OnReading(const core::SiteId& site, const modbus::Reading& reading);
  // gRPC location report (any thread).
  void OnCrewLocation(const core::CrewId& crew, core::LatLon where, core::TimePoint at);

  // api::NocBackend (any thread).
  sitepower::v1::ListSitesResponse ListSites() override;
  sitepower::v1::QueueSnapshot Snapshot() override;

  // web::WebBackend (io thread).
  std::string StateJson() override;
  std::string MetricsText() override;
  bool Ready() override;
  core::Result<std::string> Override(const std::string& operator_name,
                                     const std::string& body) override;

 private:
  struct SiteRuntime;
  struct CrewRuntime;
  struct LogEvent {
    core::TimePoint at;
    std::string kind, site, crew, task, message;
  };

  void OnSiteEvent(SiteRuntime& s, const modbus::SiteEvent& e);
  void OnLedgerEvent(const tasks::TaskEvent& e);  // io thread
  void UpdatePrediction(SiteRuntime& s, core::TimePoint now, bool new_reading);
  void LearnFromOutage(SiteRuntime& s);
  void CheckContradictions();
  // Plans once after a burst of events; `burst` (a mains failure) is planned
  // at once and again after one whole poll round, when every site of the
  // same cut is known.
  void ScheduleReplan(const std::string& why, bool burst = false);
  // Plans on the planner thread (never on the io thread: a 200 ms plan must
  // not delay the poller) and applies the result here when it comes back.
  // One plan at a time; a request meanwhile runs right after it.
  void Replan();
  void ApplyPlan(dispatch::Plan plan, size_t sites_planned, std::string why, core::TimePoint now,
                 std::chrono::steady_clock::time_point t0);
  void CheckEscalations();
  void ArmPeriodic();
  void Log(std::string kind, std::string site, std::string crew, std::string task,
           std::string message);
  void MarkViewsDirty();  // rebuild NOC views once, after the current burst
  void PublishViews();
  void PersistSite(const SiteRuntime& s);
  void RestoreState();
  void PersistOverrides();
  dispatch::PlanInput BuildPlanInput(core::TimePoint now) const;
  int GeneratorsLeft(const CrewRuntime& c) const;
  std::string FormatTime(core::TimePoint t) const;

  boost::asio::io_context& io_;
  const Config& config_;
  const core::Clock& clock_;
  tasks::TaskLedger& ledger_;
  store::Store& store_;

  std::map<core::SiteId, std::unique_ptr<SiteRuntime>> sites_;
  std::map<core::CrewId, std::unique_ptr<CrewRuntime>> crews_;
  std::deque<LogEvent> events_;  // newest last, bounded
  uint64_t ledger_sub_ = 0;
  bool ledger_subscribed_ = false;

  // Re-plan coalescing: many events in one burst give one plan.
  boost::asio::steady_timer replan_timer_;
  boost::asio::steady_timer burst_timer_;       // ends a burst of mains failures
  boost::asio::steady_timer first_plan_timer_;  // after start, once the controllers answered
  core::TimePoint started_at_{};
  bool burst_open_ = false;
  bool replan_pending_ = false;
  std::string replan_why_;
  std::unique_ptr<boost::asio::thread_pool> planner_;      // one thread: MakePlan runs there
  bool planning_ = false;                                  // a plan is on the planner thread
  bool again_ = false;                                     // asked for while planning_
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // planner results check it
  boost::asio::steady_timer periodic_timer_;
  std::optional<dispatch::Plan> last_plan_;
  core::TimePoint last_plan_at_{};
  std::map<core::SiteId, dispatch::Stop> planned_stop_;  // site -> its stop in the last plan
  std::map<core::SiteId, core::CrewId> pins_;            // operator overrides
  std::map<core::SiteId, core::TimePoint> protected_vip_until_;
  std::map<core::SiteId, bool> held_;

  std::function<void()> grpc_publish_;
  std::function<void(std::string)> web_publish_;
  std::function<void(const core::SiteId&, bool)> fast_poll_;

  // Counters for /metrics.
  struct Counters {
    uint64_t polls = 0, poll_errors = 0, plans = 0, prediction_changes = 0, overrides = 0,
             escalations = 0, contradictions = 0;
    double last_plan_ms = 0, total_plan_ms = 0;
    std::map<std::string, uint64_t> polls_by_map, errors_by_map;
  } counters_;

  bool views_dirty_ = false;
  uint64_t version_ = 0;
  std::mutex snapshot_mu_;  // guards the two snapshots below
  sitepower::v1::QueueSnapshot queue_snapshot_;
  sitepower::v1::ListSitesResponse sites_snapshot_;
  std::string state_json_;
  bool started_ = false;
};

}  // namespace sitepower::app
