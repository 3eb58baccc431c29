#include "dispatch/planner.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>

#include "dispatch/plan_model.hpp"

namespace sitepower::dispatch {

bool Objective::BetterThan(const Objective& o) const {
  if (vip_down != o.vip_down) return vip_down < o.vip_down;
  if (std::abs(Primary() - o.Primary()) > 1e-6) return Primary() < o.Primary();
  return Secondary() < o.Secondary() - 1e-6;
}

namespace {

// Fills positions of `site` in every crew route, returns the best (cost, crew, pos).
struct Insertion {
  double cost = std::numeric_limits<double>::infinity();
  int crew = -1;
  size_t pos = 0;
};

std::vector<Insertion> InsertionCosts(const PlanModel& m, Routes& routes, int site) {
  std::vector<Insertion> per_crew;
  for (int c = 0; c < m.crew_count(); ++c) {
    if (!m.CanServe(c, site) || static_cast<int>(routes[c].size()) >= m.Capacity(c)) continue;
    Insertion best;
    best.crew = c;
    for (size_t pos = m.FixedPrefix(c); pos <= routes[c].size(); ++pos) {
      routes[c].insert(routes[c].begin() + static_cast<long>(pos), site);
      double cost = m.Cost(routes);
      routes[c].erase(routes[c].begin() + static_cast<long>(pos));
      if (cost < best.cost - 1e-9) {
        best.cost = cost;
        best.pos = pos;
      }
    }
    per_crew.push_back(best);
  }
  std::sort(per_crew.begin(), per_crew.end(),
            [](const Insertion& a, const Insertion& b) { return a.cost < b.cost; });
  return per_crew;
}

// Regret insertion: repeatedly insert the site whose second-best option is
// worst compared with its best, so that sites with one good crew get it.
void RegretInsert(const PlanModel& m, Routes& routes, std::vector<int> pending) {
  while (!pending.empty()) {
    double base = m.Cost(routes);
    int pick = -1;
    Insertion pick_ins;
    double pick_regret = -1;
    for (int site : pending) {
      auto opts = InsertionCosts(m, routes, site);
      if (opts.empty() || opts[0].cost >= base - 1e-9) continue;  // no crew can help it
      double second = opts.size() > 1 ? opts[1].cost : base;
      double regret = second - opts[0].cost;
      if (regret > pick_regret + 1e-9) {
        pick_regret = regret;
        pick = site;
        pick_ins = opts[0];
      }
    }
    if (pick < 0) return;  // the rest cannot be improved by a visit
    routes[pick_ins.crew].insert(routes[pick_ins.crew].begin() + static_cast<long>(pick_ins.pos),
                                 pick);
    pending.erase(std::find(pending.begin(), pending.end(), pick));
  }
}

// Local search: relocate a site (within or across routes, or drop it) and
// swap two sites, first improvement, until no move helps or the budget ends.
void Improve(const PlanModel& m, Routes& routes, long budget) {
  double best = m.Cost(routes);
  bool improved = true;
  while (improved && budget > 0) {
    improved = false;
    for (int c = 0; c < m.crew_count() && budget > 0; ++c) {
      for (size_t i = m.FixedPrefix(c); i < routes[c].size() && budget > 0; ++i) {
        int site = routes[c][i];
        routes[c].erase(routes[c].begin() + static_cast<long>(i));
        bool moved = false;
        for (int d = 0; d < m.crew_count() && !moved; ++d) {
          if (!m.CanServe(d, site) ||
              (d != c && static_cast<int>(routes[d].size()) >= m.Capacity(d)))
            continue;
          for (size_t pos = m.FixedPrefix(d); pos <= routes[d].size() && !moved; ++pos) {
            if (d == c && pos == i) continue;
            routes[d].insert(routes[d].begin() + static_cast<long>(pos), site);
            --budget;
            double cost = m.Cost(routes);
            if (cost < best - 1e-9) {
              best = cost;
              moved = improved = true;
            } else {
              routes[d].erase(routes[d].begin() + static_cast<long>(pos));
            }
          }
        }
        if (!moved) routes[c].insert(routes[c].begin() + static_cast<long>(i), site);
      }
    }
    // Swaps between routes.
    for (int c = 0; c < m.crew_count() && budget > 0; ++c) {
      for (int d = c + 1; d < m.crew_count() && budget > 0; ++d) {
        for (size_t i = m.FixedPrefix(c); i < routes[c].size(); ++i) {
          for (size_t j = m.FixedPrefix(d); j < routes[d].size(); ++j) {
            if (!m.CanServe(d, routes[c][i]) || !m.CanServe(c, routes[d][j])) continue;
            std::swap(routes[c][i], routes[d][j]);
            --budget;
            double cost = m.Cost(routes);
            if (cost < best - 1e-9) {
              best = cost;
              improved = true;
            } else {
              std::swap(routes[c][i], routes[d][j]);
            }
          }
        }
      }
    }
  }
}

// The seed's rule: VIP first, then by battery endurance (deadline); each site
// goes to the crew that reaches it first after its current route.
Routes SeedRule(const PlanModel& m) {
  Routes routes = m.CommittedRoutes();
  std::vector<int> order = m.PendingSites(routes);
  std::stable_sort(order.begin(), order.end(), [&m](int a, int b) {
    if (m.IsVip(a) != m.IsVip(b)) return m.IsVip(a);
    return m.DeadlineMin(a) < m.DeadlineMin(b);
  });
  for (int site : order) {
    int best_crew = -1;
    double best_arrival = std::numeric_limits<double>::infinity();
    for (int c = 0; c < m.crew_count(); ++c) {
      if (!m.CanServe(c, site) || static_cast<int>(routes[c].size()) >= m.Capacity(c)) continue;
      double arrival = m.ArrivalIfAppended(routes[c], c, site);
      if (arrival < best_arrival) {
        best_arrival = arrival;
        best_crew = c;
      }
    }
    if (best_crew >= 0) routes[best_crew].push_back(site);
  }
  return routes;
}

// Nearest first: the crew that is free first goes to the nearest open site.
Routes NearestFirst(const PlanModel& m) {
  Routes routes = m.CommittedRoutes();
  std::vector<int> open = m.PendingSites(routes);
  while (!open.empty()) {
    int best_crew = -1;
    size_t best_k = 0;
    double best_arrival = std::numeric_limits<double>::infinity();
    for (int c = 0; c < m.crew_count(); ++c) {
      if (static_cast<int>(routes[c].size()) >= m.Capacity(c)) continue;
      for (size_t k = 0; k < open.size(); ++k) {
        if (!m.CanServe(c, open[k])) continue;
        double a = m.ArrivalIfAppended(routes[c], c, open[k]);
        if (a < best_arrival) {
          best_arrival = a;
          best_crew = c;
          best_k = k;
        }
      }
    }
    if (best_crew < 0) break;
    routes[best_crew].push_back(open[best_k]);
    open.erase(open.begin() + static_cast<long>(best_k));
  }
  return routes;
}

}  // namespace

Plan MakePlan(const PlanInput& input, const Options& options) {
  PlanModel m(input, options.keep_margin_min);
  Routes routes;
  if (options.algorithm == Algorithm::kSeedRule) {
    routes = SeedRule(m);
  } else if (options.algorithm == Algorithm::kNearestFirst) {
    routes = NearestFirst(m);
  } else {
    routes = m.CommittedRoutes();
    RegretInsert(m, routes, m.PendingSites(routes));
    // Deterministic effort: evaluations, not wall time (about 20k per ms here).
    long budget = std::max<long>(1000, static_cast<long>(options.budget_ms) * 2000);
    Improve(m, routes, budget);
    // Never worse than the baselines.
    for (const Routes& alt : {SeedRule(m), NearestFirst(m)}) {
      Routes improved = alt;
      Improve(m, improved, budget / 4);
      if (m.Evaluate(improved).BetterThan(m.Evaluate(routes))) routes = improved;
    }
  }
  return m.ToPlan(routes);
}

Objective EvaluateRoutes(const PlanInput& input,
                         const std::vector<std::vector<core::SiteId>>& routes) {
  PlanModel m(input, 0);
  std::map<core::SiteId, int> index;
  for (size_t i = 0; i < input.sites.size(); ++i) index[input.sites[i].id] = static_cast<int>(i);
  Routes r(input.crews.size());
  for (size_t c = 0; c < routes.size() && c < r.size(); ++c)
    for (const auto& id : routes[c])
      if (auto it = index.find(id); it != index.end()) r[c].push_back(it->second);
  return m.Evaluate(r);
}

}  // namespace sitepower::dispatch
