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
  // A crew's committed sites (tasks it is on its way to) stay on its route,
  // in their order. Only a VIP or key site may go before them: a crew is
  // diverted when that saves such a site, never for a standard one.
  bool Committed(int site) const { return sites_[site].committed; }
  bool Preempts(int site) const { return sites_[site].vip || sites_[site].key; }
  // Index just after the last committed site on `route` (0: none).
  size_t CommittedEnd(const std::vector<int>& route) const {
    for (size_t k = route.size(); k > 0; --k)
      if (sites_[route[k - 1]].committed) return k;
    return 0;
  }
  // The first position of `route` where `site` may go.
  size_t MinPos(int site, const std::vector<int>& route) const {
    return Preempts(site) ? 0 : CommittedEnd(route);
  }
  bool IsVip(int site) const { return sites_[site].vip; }
  // 0 VIP, 1 key, 2 standard: the seed rule's order.
  int TierRank(int site) const { return sites_[site].tier_rank; }
  // Minutes from now to the P50 end of the battery: its predicted endurance.
  double EnduranceMin(int site) const { return sites_[site].deadline_p50; }
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
    bool vip_down = false, key_down = false;
    // A VIP or key site also served after its P50 (1) or P90 (2): never
    // "lost anyway" at P10 and then left for later.
    int vip_late = 0, key_late = 0;
  };
  SiteCost CostOf(int site, const std::vector<double>& running,
                  std::vector<std::pair<double, double>>& scratch) const;
  double ChurnOf(int crew, int site) const {
    return sites_[site].current_crew >= 0 && sites_[site].current_crew != crew ? keep_margin_min_
                                                                               : 0;
  }
  // Lexicographic as one number: VIP sites down, key sites down, weighted
  // down minutes, then the secondary terms.
  static double Total(int vip, int key, double down, double risk, double travel, double churn) {
    return vip * 1e11 + key * 1e8 + down + 1e-4 * (risk + 0.5 * travel + churn);
  }

  Objective Evaluate(const Routes& routes) const;
  // Lexicographic objective as one number, for ranking insertions.
  double Cost(const Routes& routes) const;
  Plan ToPlan(const Routes& routes) const;
  // Why site `a` comes before site `b` on a route, in words for a reason.
  std::string OrderWhy(int a, int b) const;

 private:
  struct SiteInfo {
    double deadline = 0;  // minutes from now, P10 or P50 (see planner.hpp)
    bool uses_p10 = false;
    double deadline_p10 = 0;  // minutes from now
    double deadline_p50 = 0;  // minutes from now
    double deadline_p90 = 0;  // minutes from now
    double deadline_sd = 0;   // spread of the battery's end (P10-P90 / 2.563): 0 = known
    int tier_rank = 2;        // 0 VIP, 1 key, 2 standard
    double end = 0;           // minutes from now: mains restore or horizon
    double hookup = 15;
    double weight = 1;
    bool vip = false;
    bool key = false;
    bool needs = false;  // to be planned
    bool can_go_down = true;
    bool committed = false;  // on a crew's committed list
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
    int reserve = 0;  // of them, kept for VIP/key sites (CrewState::reserved_for)
    std::vector<int> committed;
  };
  std::vector<double> RunningTimes(const Routes& routes, double* travel) const;
  // Expected minutes `u` is down on its own battery if a generator carries
  // it `stop` minutes from now: E[max(0, stop - end)] over the runtime band.
  double ExpectedDown(int u, double stop) const;

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
