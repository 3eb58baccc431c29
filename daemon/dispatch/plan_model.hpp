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

  Routes CommittedRoutes() const;
  // Sites that need a generator and are not yet in `routes`, in input order.
  std::vector<int> PendingSites(const Routes& routes) const;
  // Minutes from now until `crew` reaches `site` after finishing `route`.
  double ArrivalIfAppended(const std::vector<int>& route, int crew, int site) const;

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
    int current_crew = -1;      // crew holding its open task now
    std::vector<int> upstream;  // this site and every site that feeds it, transitively
  };
  struct CrewInfo {
    double start = 0;    // minutes from now when it can leave
    double gone = 1e18;  // minutes from now when it becomes unavailable
    double speed = 40;
    int generators = 0;
    std::vector<int> committed;
  };
  double Travel(int crew, int from_site, int to_site) const;  // from_site -1 = crew start
  std::vector<double> RunningTimes(const Routes& routes, double* travel) const;

  const PlanInput& in_;
  double keep_margin_min_ = 0;
  std::vector<SiteInfo> sites_;
  std::vector<CrewInfo> crews_;
};

}  // namespace sitepower::dispatch
