// The exact optimum of a tiny instance by exhaustion: every assignment of
// sites to crews (or to none) and every order within each crew, scored by
// EvaluateRoutes. For tests and the benchmark only: (crews + 1)^n x n! plans,
// so keep n <= 7.
#pragma once

#include "dispatch/planner.hpp"

namespace sitepower::dispatch {

Objective ExactOptimum(const PlanInput& input);

}  // namespace sitepower::dispatch
