// The outage scenario of ../shared/scenarios/FORMAT.md as plain data, its
// strict loader, the plan JSON and the scoring. This is the contract between
// planner, drill and any evaluator: it implements FORMAT.md exactly.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/geo.hpp"
#include "core/site.hpp"
#include "core/status.hpp"
#include "core/time.hpp"

namespace sitepower::scenario {

using core::CrewId;
using core::SiteId;
using core::TimePoint;

struct ControllerRef {
  std::string map = "sunspec-802";  // register map name (YD/T 1363: a config/ydt-maps name)
  int unit = 1;                     // Modbus unit id, or YD/T 1363 ADR
  std::string protocol = "modbus";  // modbus | ydt1363
};

struct Site {
  SiteId id;
  std::string name;
  std::string grid;
  core::LatLon location;
  core::Tier tier = core::Tier::kStandard;
  std::vector<SiteId> feeds;  // sites whose transmission goes through this one
  double load_w = 0;
  std::optional<double> hookup_min;  // per-site override of Scenario::hookup_min
  std::optional<core::BatterySpec> battery;
  std::optional<double> runtime_min;  // "known runtime" alternative to battery
  bool fixed_generator = false;       // generator: fixed
  ControllerRef controller;
  int line = 0;  // source line, for error messages
};

struct Crew {
  CrewId id;
  std::string grid;
  core::LatLon location;
  int generators = 0;
  std::optional<double> speed_kmh;
  std::optional<TimePoint> available_from;
  int line = 0;
};

enum class FaultKind { kTimeout, kException, kGarbage, kHalfOpen };
std::string_view FaultKindName(FaultKind k);

struct MainsFail {
  std::vector<SiteId> sites;
};  // "all" is expanded at load
struct MainsRestore {
  std::vector<SiteId> sites;
};
struct CrewUnavailable {
  CrewId crew;
};
struct ControllerFault {
  SiteId site;
  FaultKind kind;
  double for_min = 0;
};
struct DaemonKill {
  double restart_after_s = 0;
};  // wall-clock seconds
struct CrewLinkCut {
  CrewId crew;
  double for_min = 0;
};

using EventBody = std::variant<MainsFail, MainsRestore, CrewUnavailable, ControllerFault,
                               DaemonKill, CrewLinkCut>;

struct Event {
  TimePoint at;
  EventBody body;
  int line = 0;
};

struct Scenario {
  std::string name;
  std::string description;
  core::ZonedTime start;  // scenario clock zero, with the offset used in reports
  TimePoint end;          // scoring horizon (default start + 24 h)
  core::TierWeights weights;
  core::TravelModel travel;
  double hookup_min = 15;
  std::vector<Site> sites;
  std::vector<Crew> crews;
  std::vector<Event> events;  // in time order

  const Site* FindSite(const SiteId& id) const;
  const Crew* FindCrew(const CrewId& id) const;
  double HookupMin(const Site& s) const { return s.hookup_min.value_or(hookup_min); }
  int offset_min() const { return start.offset_min; }
  // First mains_fail of the site, and the first mains_restore after it.
  std::optional<TimePoint> FirstMainsFail(const SiteId& id) const;
  std::optional<TimePoint> MainsRestoreAfterFail(const SiteId& id) const;
  // Time of the first crew_unavailable of the crew, if any.
  std::optional<TimePoint> CrewUnavailableAt(const CrewId& id) const;
};

// Strict loader: unknown keys, bad types, unknown site/crew references,
// duplicate ids, feeds cycles and out-of-order events are errors naming
// file:line and key path; every error is reported, not only the first.
core::Result<Scenario> LoadScenarioFile(const std::string& path);
core::Result<Scenario> LoadScenarioString(const std::string& yaml, const std::string& name);

// ---- Plans (FORMAT.md "Plan format") ----
struct PlannedStop {
  SiteId site;
  // Optional planner annotations (ignored by scoring).
  std::optional<TimePoint> eta;         // arrival
  std::optional<TimePoint> running_at;  // arrival + hookup
  std::optional<TimePoint> deadline;    // the deadline the planner used
  std::string reason;
};
struct Route {
  CrewId crew;
  std::vector<PlannedStop> stops;
};
struct Plan {
  std::string scenario;
  TimePoint planned_at;
  std::vector<Route> routes;
};

// Plan JSON exactly as FORMAT.md (plus per-site eta/running_at/deadline/reason
// fields in "stops" when present). `offset_min` is used for the "HH:MM" of planned_at.
std::string PlanToJson(const Plan& plan, int offset_min, bool pretty = true);
core::Result<Plan> PlanFromJson(const std::string& json, const Scenario& s);
// Invalid plans (unknown crew or site, two routes for a crew, site twice,
// more sites than generators) -> InvalidArgument naming the offence.
core::Status ValidatePlan(const Plan& plan, const Scenario& s);

// ---- Scoring (FORMAT.md "Scoring") ----
struct SiteOutcome {
  double down_min = 0;
  std::optional<TimePoint> mains_fail_at;
  std::optional<TimePoint> generator_running_at;
  std::optional<CrewId> crew;
  std::optional<double> runtime_min;  // true runtime from first mains_fail had nobody come
};
struct Score {
  std::map<SiteId, SiteOutcome> sites;
  int vip_down = 0, key_down = 0, standard_down = 0;
  double weighted_down_min = 0;
  double travel_min = 0;
  std::optional<TimePoint> last_generator_running_at;
  // FORMAT.md order: fewer vip down, then less weighted_down_min, then less travel.
  bool BetterThan(const Score& other) const;
};

// Scores a plan against known runtimes (minutes from each site's first
// mains_fail to its end voltage). Sites without an entry in `runtime_min`
// use Site::runtime_min; a site with neither is treated as never down on its own.
Score ScorePlan(const Scenario& s, const Plan& plan, const std::map<SiteId, double>& runtime_min);

// Scores what really happened (the drill): per site, when its own battery hit
// end voltage (if it did) and when a generator started carrying it (if one did).
struct Observed {
  std::optional<TimePoint> battery_empty_at;
  std::optional<TimePoint> generator_running_at;
  std::optional<CrewId> crew;
  std::optional<double> runtime_min;
};
Score ScoreObserved(const Scenario& s, const std::map<SiteId, Observed>& observed);

}  // namespace sitepower::scenario
