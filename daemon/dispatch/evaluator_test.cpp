// The incremental evaluator agrees with the full evaluation after any
// sequence of moves (feeders included), which the search relies on.
#include "dispatch/evaluator.hpp"

#include <gtest/gtest.h>

#include <random>

namespace sitepower::dispatch {
namespace {

TEST(EvaluatorTest, AgreesWithFullEvaluationAfterRandomMoves) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-0.3, 0.3), d(20, 300);
  const core::TimePoint t0(std::chrono::hours(24 * 18000));
  PlanInput in;
  in.now = t0;
  in.travel = {40, 1.5};
  in.horizon_end = t0 + std::chrono::hours(12);
  for (int i = 0; i < 30; ++i) {
    SiteNeed s;
    s.id = "S" + std::to_string(i);
    s.location = {u(rng), u(rng)};
    s.tier = i % 7 == 0 ? core::Tier::kVip : i % 3 == 0 ? core::Tier::kKey : core::Tier::kStandard;
    double dl = d(rng);
    s.deadline_p10 = t0 + core::FromMinutes(dl * 0.85);
    s.deadline_p50 = t0 + core::FromMinutes(dl);
    s.deadline_p90 = t0 + core::FromMinutes(dl * 1.15);
    if (i % 5 == 0 && i + 2 < 30)
      s.feeds = {"S" + std::to_string(i + 1), "S" + std::to_string(i + 2)};
    if (i % 4 == 1) s.current_crew = "C" + std::to_string(i % 3);
    in.sites.push_back(s);
  }
  for (int c = 0; c < 4; ++c) {
    CrewState cs;
    cs.id = "C" + std::to_string(c);
    cs.location = {u(rng), u(rng)};
    cs.generators_left = 6;
    cs.available_from = t0;
    in.crews.push_back(cs);
  }
  PlanModel m(in, 10);
  Routes routes(4);
  for (int i = 0; i < 20; ++i) routes[i % 4].push_back(i);
  Evaluator ev(m, routes);
  ASSERT_NEAR(ev.cost(), m.Cost(ev.routes()), 1e-6);
  std::uniform_int_distribution<int> crew(0, 3);
  for (int step = 0; step < 2000; ++step) {
    int a = crew(rng), b = crew(rng);
    Routes r = ev.routes();
    if (r[a].empty()) continue;
    int i = static_cast<int>(rng() % r[a].size());
    int s = r[a][i];
    r[a].erase(r[a].begin() + i);
    if (b == a || rng() % 3 == 0) {
      // Relocate within a, or drop the site from every route.
      if (rng() % 2) r[a].insert(r[a].begin() + static_cast<long>(rng() % (r[a].size() + 1)), s);
      double tried = ev.Try(a, r[a]);
      ASSERT_NEAR(tried, m.Cost(r), 1e-6 * std::max(1.0, tried)) << "step " << step;
      if (rng() % 2) ev.Commit(a, r[a]);
    } else {
      r[b].insert(r[b].begin() + static_cast<long>(rng() % (r[b].size() + 1)), s);
      // Sometimes a site left out comes back on a's route.
      for (int k = 20; k < 30 && rng() % 4 == 0; ++k)
        if (ev.CrewOf(k) < 0 && std::find(r[b].begin(), r[b].end(), k) == r[b].end()) {
          r[a].push_back(k);
          break;
        }
      double tried = ev.Try(a, r[a], b, &r[b]);
      ASSERT_NEAR(tried, m.Cost(r), 1e-6 * std::max(1.0, tried)) << "step " << step;
      if (rng() % 2) ev.Commit(a, r[a], b, &r[b]);
    }
    ASSERT_NEAR(ev.cost(), m.Cost(ev.routes()), 1e-6 * std::max(1.0, ev.cost())) << "step " << step;
  }
}

}  // namespace
}  // namespace sitepower::dispatch
