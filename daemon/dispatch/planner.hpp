// Orders outage sites into crew routes. Pure: no I/O, no clock, no threads;
// identical inputs give an identical plan.
//
// Objective (FORMAT.md, with the grid managers' rule first): fewest VIP sites
// down, then fewest key sites down, then least weighted_down_min (a site is
// also down while a site feeding it is down), then least travel. A site's
// deadline is its P10 when its loss is costly (VIP, key, or it feeds others),
// else its P50. Travel follows the FORMAT.md travel model.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/geo.hpp"
#include "core/site.hpp"
#include "core/time.hpp"

namespace sitepower::dispatch {

struct SiteNeed {
  core::SiteId id;
  core::LatLon location;
  core::Tier tier = core::Tier::kStandard;
  std::vector<core::SiteId> feeds;  // direct feeds (downstream sites)
  double hookup_min = 15;
  core::TimePoint mains_fail_at{};  // may be in the future for an announced outage
  core::TimePoint deadline_p10{}, deadline_p50{}, deadline_p90{};  // battery at end voltage
  std::optional<core::TimePoint> mains_restore_at;                 // when known (offline plans)
  bool served = false;  // generator running or mains back: not planned, still feeds
  // Crew that holds this site's open task now. Moving it to another crew costs
  // Options::keep_margin_min (in the secondary criterion), so a task stays with
  // its crew unless moving it saves down time, or more risk/travel than that.
  std::optional<core::CrewId> current_crew;
  bool fixed_generator = false;  // site generator: never down on its own
};

struct CrewState {
  core::CrewId id;
  core::LatLon location;
  int generators_left = 0;
  core::TimePoint available_from{};
  double speed_kmh = 0;  // 0 = travel model default
  std::optional<core::TimePoint> unavailable_from;
  // Sites of tasks this crew accepted or is working on, in order: kept at the
  // head of its route.
  std::vector<core::SiteId> committed;
  // VIP or key sites still on mains for which this crew keeps a generator
  // (ReserveGenerators): one generator each that no standard site gets.
  std::vector<core::SiteId> reserved_for;
};

struct Pin {  // operator override: this crew serves this site
  core::SiteId site;
  core::CrewId crew;
};

struct PlanInput {
  core::TimePoint now{};
  std::vector<SiteNeed> sites;
  std::vector<CrewState> crews;
  core::TravelModel travel;
  core::TierWeights weights;
  core::TimePoint horizon_end{};  // scoring horizon; zero = now + 24 h
  std::vector<Pin> pins;
  std::vector<core::SiteId> held;  // do not plan these sites
  int offset_min = 0;              // UTC offset for "HH:MM" in reasons
  // The previous plan's routes (site ids per crew id), a warm start for a
  // re-plan after one event: the search starts from it, not from nothing.
  std::map<core::CrewId, std::vector<core::SiteId>> previous_routes;
};

enum class Algorithm { kBest, kSeedRule, kNearestFirst };

struct Options {
  Algorithm algorithm = Algorithm::kBest;
  // Search effort, as a number of move evaluations (about 1,000 per ms on
  // the reference machine): the plan is the same however busy the machine
  // is. A wall-clock stop at 20 times this (and at least 5 s) is only a
  // safety on a machine that is far slower.
  int budget_ms = 200;
  uint64_t seed = 1;
  double keep_margin_min = 10;
  // Calm re-plans: with a previous plan (PlanInput::previous_routes), the
  // optimized plan replaces it (repaired: sites that no longer need a
  // generator dropped, new ones inserted where they cost least) only when
  // it has fewer VIP or key sites down, or saves at least this many
  // weighted down minutes (P10-risk minutes count a quarter). 0: always the
  // optimized plan.
  double change_margin_min = 0;
};

struct Stop {
  core::SiteId site;
  core::TimePoint eta{}, running_at{}, deadline{};
  double margin_min = 0;  // deadline - running_at
  std::string reason;  // for operators: "VIP; P10 runtime 1 h 40; B1 arrives 09:12, 28 min margin"
};

struct CrewRoute {
  core::CrewId crew;
  std::vector<Stop> stops;
};

struct Objective {
  int vip_down = 0;
  int key_down = 0;  // key sites down (after their P10), second criterion
  // VIP / key sites served after their P50, plus those after their P90: a
  // site the plan counts as down at P10 is still served as early as its
  // band allows. Compared with vip_down / key_down (as their sums).
  int vip_late = 0, key_late = 0;
  double weighted_down_min = 0;
  // Tie-break between plans equal on the two above: weighted down minutes if
  // every site only lasted to its P10, plus half the travel minutes. Prefers
  // margin where it is cheap, and short routes.
  double risk_down_min = 0;
  double travel_min = 0;
  double churn_min = 0;  // keep_margin_min per task moved away from its current crew
  double Primary() const { return weighted_down_min; }
  double Secondary() const { return risk_down_min + 0.5 * travel_min + churn_min; }
  bool BetterThan(const Objective& o) const;
};

struct Plan {
  std::vector<CrewRoute> routes;       // one per input crew, in input order
  std::vector<core::SiteId> unserved;  // needing sites no route reaches
  Objective objective;                 // as predicted with the deadlines used
  // With Options::change_margin_min: the previous plan, repaired, was kept
  // because the optimized one was not better by the margin.
  bool kept_previous = false;
};

// Whether plan objective `a` is worth a change from `b` (see
// Options::change_margin_min): fewer VIP down, else fewer key down, else a
// gain of at least `margin_min` weighted down minutes (risk minutes count a
// quarter).
bool ClearlyBetter(const Objective& a, const Objective& b, double margin_min);

// Never fails: sites or crews with unusable data are left unserved.
Plan MakePlan(const PlanInput& input, const Options& options);

// The objective of given routes (site ids per crew, in input crew order), as
// MakePlan evaluates it. For baselines, exact solvers and tests.
Objective EvaluateRoutes(const PlanInput& input,
                         const std::vector<std::vector<core::SiteId>>& routes);

}  // namespace sitepower::dispatch
