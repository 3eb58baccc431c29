#include "ctl/offline_plan.hpp"

#include <algorithm>

#include "model/runtime.hpp"

namespace sitepower::ctl {

std::map<core::SiteId, SiteRuntime> PredictScenarioRuntimes(const scenario::Scenario& s) {
  std::map<core::SiteId, SiteRuntime> out;
  for (const auto& site : s.sites) {
    if (!s.FirstMainsFail(site.id)) continue;
    if (site.runtime_min) {
      out[site.id] = {*site.runtime_min, *site.runtime_min, *site.runtime_min};
    } else if (site.battery) {
      model::RuntimeBand b = model::PredictRuntime(*site.battery, model::Load{site.load_w, 0});
      out[site.id] = {b.p10_min, b.p50_min, b.p90_min};
    }
  }
  return out;
}

dispatch::PlanInput OfflinePlanInput(const scenario::Scenario& s, core::TimePoint at,
                                     const std::map<core::SiteId, SiteRuntime>& runtimes) {
  dispatch::PlanInput in;
  in.now = at;
  in.travel = s.travel;
  in.weights = s.weights;
  in.horizon_end = s.end;
  in.offset_min = s.offset_min();
  for (const auto& site : s.sites) {
    auto fail = s.FirstMainsFail(site.id);
    auto rt = runtimes.find(site.id);
    if (!fail || rt == runtimes.end()) continue;
    dispatch::SiteNeed n;
    n.id = site.id;
    n.location = site.location;
    n.tier = site.tier;
    n.feeds = site.feeds;
    n.hookup_min = s.HookupMin(site);
    n.mains_fail_at = *fail;
    n.deadline_p10 = *fail + core::FromMinutes(rt->second.p10);
    n.deadline_p50 = *fail + core::FromMinutes(rt->second.p50);
    n.deadline_p90 = *fail + core::FromMinutes(rt->second.p90);
    n.mains_restore_at = s.MainsRestoreAfterFail(site.id);
    n.fixed_generator = site.fixed_generator;
    in.sites.push_back(std::move(n));
  }
  for (const auto& crew : s.crews) {
    dispatch::CrewState c;
    c.id = crew.id;
    c.location = crew.location;
    c.generators_left = crew.generators;
    c.available_from = std::max(at, crew.available_from.value_or(at));
    c.speed_kmh = crew.speed_kmh.value_or(0);
    c.unavailable_from = s.CrewUnavailableAt(crew.id);
    in.crews.push_back(std::move(c));
  }
  return in;
}

scenario::Plan ToScenarioPlan(const scenario::Scenario& s, core::TimePoint at,
                              const dispatch::Plan& plan) {
  scenario::Plan out{s.name, at, {}};
  for (const auto& r : plan.routes) {
    scenario::Route route{r.crew, {}};
    for (const auto& st : r.stops) {
      route.stops.push_back(
          scenario::PlannedStop{st.site, st.eta, st.running_at, st.deadline, st.reason});
    }
    out.routes.push_back(std::move(route));
  }
  return out;
}

}  // namespace sitepower::ctl
