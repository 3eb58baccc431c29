// Builds the planner's input from a whole scenario (an announced outage: every
// event is known), and turns the planner's output into FORMAT.md's plan.
#pragma once

#include <map>

#include "dispatch/planner.hpp"
#include "scenario/scenario.hpp"

namespace sitepower::ctl {

// Predicted runtime band per site (battery at load_w constant power, or the
// scenario's runtime_min), keyed by site id. Sites without mains_fail are absent.
struct SiteRuntime {
  double p10 = 0, p50 = 0, p90 = 0;
};
std::map<core::SiteId, SiteRuntime> PredictScenarioRuntimes(const scenario::Scenario& s);

// Planner input at time `at` (crews leave at max(at, available_from)).
dispatch::PlanInput OfflinePlanInput(const scenario::Scenario& s, core::TimePoint at,
                                     const std::map<core::SiteId, SiteRuntime>& runtimes);

scenario::Plan ToScenarioPlan(const scenario::Scenario& s, core::TimePoint at,
                              const dispatch::Plan& plan);

}  // namespace sitepower::ctl
