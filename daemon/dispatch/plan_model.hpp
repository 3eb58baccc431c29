// The planner's internal model: sites and crews as indices, travel times, and
// the FORMAT.md objective evaluated on candidate routes. Internal to dispatch.
#pragma once

#include <vector>

#include "dispatch/planner.hpp"

namespace sitepower::dispatch {

using Routes = std::vector<std::vector<int>>;  // per crew, site indices in visit order

class PlanModel {
 public:
  PlanModel(const PlanInput& input, double keep_margin_min);

  int crew_count() const { return static_cast<int>(crews_.size()); }
  bool CanServe(int crew, int site) const;
  int Capacity(int crew) const { return crews_[crew].generators; }
  size_t FixedPrefix(int crew) const { return crews_[crew].committed.size(); }
  bool IsVip(int site) const { return sites_[site].vip; }
  double DeadlineMin(int site) const { return sites_[site].deadline; }
  double Hookup(int site) const { return sites_[site].hookup; }

  Routes CommittedRoutes() const;
  // Committed routes, then what is still valid of the previous plan.
  Routes WarmStart() const;
  // Sites that need a generator and are not yet in `routes`, in input order.
  std::vector<int> PendingSites(const Routes& routes) const;
  // Minutes from now until `crew` reaches `site` after finishing `route`.
  double ArrivalIfAppended(const std::vector<int>& route, int crew, int site) const;
  // Minutes from now until `crew` is free after finishing `route`.
  double FreeAfter(const std::vector<int>& route, int crew) const;
  // Minutes of travel for `crew` between two sites (from_site -1 = its start).
  double Travel(int crew, int from_site, int to_site) const;

  // Running time (minutes from now) of each stop of `route` for `crew`, in
  // route order; stops beyond its generators or its end of duty get kNever.
  // Returns the route's travel minutes (served stops only).
  double RouteRuns(int crew, const std::vector<int>& route, std::vector<double>* runs) const;
  // Sites whose downtime depends on `site`'s (itself and what it feeds, transitively).
  const std::vector<int>& Downstream(int site) const { return sites_[site].downstream; }
  // The crews worth trying for `site`: the nearest few, its current and pinned crew.
  const std::vector<int>& Candidates(int site) const { return sites_[site].candidates; }
  int site_count() const { return static_cast<int>(sites_.size()); }
  // One site's part of the objective given every site's running time.
  struct SiteCost {
    double down = 0, risk = 0;
    bool vip_down = false;
  };
  SiteCost CostOf(int site, const std::vector<double>& running,
                  std::vector<std::pair<double, double>>& scratch) const;
  double ChurnOf(int crew, int site) const {
    return sites_[site].current_crew >= 0 && sites_[site].current_crew != crew ? keep_margin_min_
                                                                               : 0;
  }
  static double Total(int vip, double down, double risk, double travel, double churn) {
    return vip * 1e9 + down + 1e-4 * (risk + 0.5 * travel + churn);
  }

  Objective Evaluate(const Routes& routes) const;
  // Lexicographic objective as one number, for ranking insertions.
  double Cost(const Routes& routes) const;
  Plan ToPlan(const Routes& routes) const;

 private:
  struct SiteInfo {
    double deadline = 0;  // minutes from now, P10 or P50 (see planner.hpp)
    bool uses_p10 = false;
    double deadline_p10 = 0;  // minutes from now
    double end = 0;           // minutes from now: mains restore or horizon
    double hookup = 15;
    double weight = 1;
    bool vip = false;
    bool needs = false;  // to be planned
    bool can_go_down = true;
    int pinned_crew = -1;
    int current_crew = -1;        // crew holding its open task now
    std::vector<int> upstream;    // this site and every site that feeds it, transitively
    std::vector<int> downstream;  // this site and every site it feeds, transitively
    std::vector<int> candidates;  // crews to try (see Candidates)
  };
  struct CrewInfo {
    double start = 0;    // minutes from now when it can leave
    double gone = 1e18;  // minutes from now when it becomes unavailable
    double speed = 40;
    int generators = 0;
    std::vector<int> committed;
  };
  std::vector<double> RunningTimes(const Routes& routes, double* travel) const;

  const PlanInput& in_;
  double keep_margin_min_ = 0;
  std::vector<SiteInfo> sites_;
  std::vector<CrewInfo> crews_;
  // Travel is the FORMAT.md haversine; cos(latitude) of every point and the
  // km from each crew's start to each site are computed once (same formula,
  // same result, a third of the cost).
  std::vector<double> site_cos_lat_, crew_cos_lat_;
  std::vector<double> start_km_;  // [crew * sites + site]
  double Km(core::LatLon a, double cos_a, core::LatLon b, double cos_b) const;
};

}  // namespace sitepower::dispatch
