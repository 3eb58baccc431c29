#include "dispatch/planner.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "dispatch/evaluator.hpp"
#include "dispatch/plan_model.hpp"

namespace sitepower::dispatch {

bool Objective::BetterThan(const Objective& o) const {
  if (vip_down + vip_late != o.vip_down + o.vip_late)
    return vip_down + vip_late < o.vip_down + o.vip_late;
  if (key_down + key_late != o.key_down + o.key_late)
    return key_down + key_late < o.key_down + o.key_late;
  if (std::abs(Primary() - o.Primary()) > 1e-6) return Primary() < o.Primary();
  return Secondary() < o.Secondary() - 1e-6;
}

namespace {

struct Insertion {
  double cost = std::numeric_limits<double>::infinity();
  int crew = -1;
  size_t pos = 0;
};

struct Limits {
  long evaluations;                                 // deterministic effort
  std::chrono::steady_clock::time_point hard_stop;  // safety on a slow machine
  bool Spent(const Evaluator& ev) const {
    return ev.evaluations() >= evaluations ||
           ((ev.evaluations() & 255) == 0 && std::chrono::steady_clock::now() > hard_stop);
  }
};

// The best place for `site` (not on any route) among its candidate crews.
// `crews` and `tail` narrow the search for large constructions: the nearest
// `crews` candidates only, and only the last `tail` places of each route.
Insertion BestInsertion(const PlanModel& m, Evaluator& ev, int site, std::vector<int>& scratch,
                        Insertion* second = nullptr, size_t crews = 1000, size_t tail = 1000) {
  Insertion best, next;
  const auto& cands = m.Candidates(site);
  for (size_t ci = 0; ci < cands.size() && ci < crews; ++ci) {
    const int c = cands[ci];
    const auto& r = ev.routes()[c];
    if (!m.CanServe(c, site) || static_cast<int>(r.size()) >= m.Capacity(c)) continue;
    Insertion here;
    size_t from = std::max(m.MinPos(site, r), r.size() > tail ? r.size() - tail : size_t{0});
    for (size_t pos = from; pos <= r.size(); ++pos) {
      scratch = r;
      scratch.insert(scratch.begin() + static_cast<long>(pos), site);
      double cost = ev.Try(c, scratch);
      if (cost < here.cost - 1e-9) here = {cost, c, pos};
    }
    if (here.cost < best.cost - 1e-9) {
      next = best;
      best = here;
    } else if (here.cost < next.cost - 1e-9) {
      next = here;
    }
  }
  if (best.crew < 0) {
    // Every nearby crew is full: any crew with a generator left (crews cross
    // grid borders when that saves a site), appended to its route.
    for (int c = 0; c < m.crew_count(); ++c) {
      const auto& r = ev.routes()[c];
      if (!m.CanServe(c, site) || static_cast<int>(r.size()) >= m.Capacity(c)) continue;
      scratch = r;
      scratch.push_back(site);
      double cost = ev.Try(c, scratch);
      if (cost < best.cost - 1e-9) {
        next = best;
        best = {cost, c, r.size()};
      } else if (cost < next.cost - 1e-9) {
        next = {cost, c, r.size()};
      }
    }
  }
  if (second) *second = next;
  return best;
}

void InsertAt(Evaluator& ev, const Insertion& ins, int site, std::vector<int>& scratch) {
  scratch = ev.routes()[ins.crew];
  scratch.insert(scratch.begin() + static_cast<long>(ins.pos), site);
  ev.Commit(ins.crew, scratch);
}

// Construction. Few sites: regret insertion (the site whose second-best crew
// is much worse than its best goes first, so sites with one good crew get
// it). Many: the most urgent first, each at its cheapest place; the local
// search repairs the rest.
void Construct(const PlanModel& m, Evaluator& ev, std::vector<int> pending, const Limits& lim) {
  std::vector<int> scratch;
  if (pending.size() <= 60) {
    while (!pending.empty() && !lim.Spent(ev)) {
      double base = ev.cost();
      int pick = -1;
      Insertion pick_ins;
      double pick_regret = -1;
      for (int site : pending) {
        Insertion second;
        Insertion best = BestInsertion(m, ev, site, scratch, &second);
        if (best.crew < 0 || best.cost >= base - 1e-9) continue;  // no crew can help it
        double regret = (second.crew >= 0 ? second.cost : base) - best.cost;
        if (regret > pick_regret + 1e-9) {
          pick_regret = regret;
          pick = site;
          pick_ins = best;
        }
      }
      if (pick < 0) return;
      InsertAt(ev, pick_ins, pick, scratch);
      pending.erase(std::find(pending.begin(), pending.end(), pick));
    }
    return;
  }
  // VIPs first (they weigh most, lexicographically), then by deadline.
  std::stable_sort(pending.begin(), pending.end(), [&m](int a, int b) {
    if (m.IsVip(a) != m.IsVip(b)) return m.IsVip(a);
    return m.DeadlineMin(a) < m.DeadlineMin(b);
  });
  for (int site : pending) {
    if (lim.Spent(ev)) return;
    Insertion best = BestInsertion(m, ev, site, scratch, nullptr, 8, 3);
    if (best.crew >= 0 && best.cost < ev.cost() - 1e-9) InsertAt(ev, best, site, scratch);
  }
}

// Local search, best improvement per site: relocate it (within its route or
// to a candidate crew), swap it with a site of a candidate crew, insert sites
// left out; until nothing helps or the effort is spent. The order of sites is
// shuffled with the seed: deterministic for a given seed.
void Improve(const PlanModel& m, Evaluator& ev, const Limits& lim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> rc, rd;
  bool improved = true;
  while (improved && !lim.Spent(ev)) {
    improved = false;
    std::vector<int> order;
    for (int c = 0; c < m.crew_count(); ++c)
      for (int s : ev.routes()[c])
        if (!m.Committed(s)) order.push_back(s);
    std::shuffle(order.begin(), order.end(), rng);
    for (int s : order) {
      if (lim.Spent(ev)) return;
      const int c = ev.CrewOf(s);
      if (c < 0) continue;
      const double base = ev.cost();
      double best = base - 1e-9;
      int best_kind = 0, best_d = -1;
      size_t best_pos = 0, best_j = 0;
      const std::vector<int>& own = ev.routes()[c];
      const size_t at = static_cast<size_t>(std::find(own.begin(), own.end(), s) - own.begin());
      rc = own;
      rc.erase(rc.begin() + static_cast<long>(at));
      const std::vector<int> removed = rc;
      // Relocate within the route.
      for (size_t pos = m.MinPos(s, removed); pos <= removed.size(); ++pos) {
        if (pos == at) continue;
        rc = removed;
        rc.insert(rc.begin() + static_cast<long>(pos), s);
        double cost = ev.Try(c, rc);
        if (cost < best) best = cost, best_kind = 1, best_pos = pos;
      }
      for (int d : m.Candidates(s)) {
        if (d == c || !m.CanServe(d, s)) continue;
        const std::vector<int>& other = ev.routes()[d];
        // Relocate to crew d.
        if (static_cast<int>(other.size()) < m.Capacity(d)) {
          for (size_t pos = m.MinPos(s, other); pos <= other.size(); ++pos) {
            rd = other;
            rd.insert(rd.begin() + static_cast<long>(pos), s);
            double cost = ev.Try(c, removed, d, &rd);
            if (cost < best) best = cost, best_kind = 2, best_d = d, best_pos = pos;
          }
        }
        // Swap with one of crew d's sites.
        for (size_t j = m.MinPos(s, other); j < other.size(); ++j) {
          if (m.Committed(other[j]) || !m.CanServe(c, other[j]) || at < m.MinPos(other[j], own))
            continue;
          rc = own;
          rc[at] = other[j];
          rd = other;
          rd[j] = s;
          double cost = ev.Try(c, rc, d, &rd);
          if (cost < best) best = cost, best_kind = 3, best_d = d, best_j = j;
        }
      }
      if (best_kind == 0) continue;
      improved = true;
      if (best_kind == 1) {
        rc = removed;
        rc.insert(rc.begin() + static_cast<long>(best_pos), s);
        ev.Commit(c, rc);
      } else if (best_kind == 2) {
        rd = ev.routes()[best_d];
        rd.insert(rd.begin() + static_cast<long>(best_pos), s);
        ev.Commit(c, removed, best_d, &rd);
      } else {
        rc = own;
        rd = ev.routes()[best_d];
        int t = rd[best_j];
        rc[at] = t;
        rd[best_j] = s;
        ev.Commit(c, rc, best_d, &rd);
      }
    }
    // Sites no route took yet: a route may have room for them now.
    std::vector<int> scratch;
    for (int s : m.PendingSites(ev.routes())) {
      if (lim.Spent(ev)) return;
      Insertion ins = BestInsertion(m, ev, s, scratch);
      if (ins.crew >= 0 && ins.cost < ev.cost() - 1e-9) {
        InsertAt(ev, ins, s, scratch);
        improved = true;
      }
    }
  }
}

// Large neighbourhood search: remove a few related sites (one at random and
// the routed sites nearest to it) and put them back by regret insertion, then
// repair locally; keep the result only if it is better. Escapes the local
// optima the moves above stop in. Ends when the effort is spent or after many
// rounds without a gain.
std::vector<std::vector<int>> Lns(const PlanModel& m, const Routes& start, const Limits& lim,
                                  uint64_t seed, const PlanInput& in) {
  std::mt19937_64 rng(seed * 7919 + 17);
  auto ev = std::make_unique<Evaluator>(m, start);
  Routes best = start;
  double best_cost = ev->cost();
  long spent = 0;
  int idle = 0;
  while (idle < 150) {
    std::vector<int> routed;
    for (int c = 0; c < m.crew_count(); ++c)
      for (int s : ev->routes()[c])
        if (!m.Committed(s)) routed.push_back(s);
    if (routed.size() < 2) break;
    const int pivot = routed[rng() % routed.size()];
    std::sort(routed.begin(), routed.end(), [&](int a, int b) {
      return core::HaversineKm(in.sites[a].location, in.sites[pivot].location) <
             core::HaversineKm(in.sites[b].location, in.sites[pivot].location);
    });
    const size_t k = std::min(routed.size(), static_cast<size_t>(2 + rng() % 4));
    Routes r = ev->routes();
    for (size_t j = 0; j < k; ++j)
      for (auto& route : r)
        route.erase(std::remove(route.begin(), route.end(), routed[j]), route.end());
    ev = std::make_unique<Evaluator>(m, std::move(r));
    Limits round{std::max<long>(0, lim.evaluations - spent), lim.hard_stop};
    Construct(m, *ev, m.PendingSites(ev->routes()), round);
    Improve(m, *ev, round, rng());
    spent += ev->evaluations();  // a fresh evaluator per round
    if (ev->cost() < best_cost - 1e-9) {
      best_cost = ev->cost();
      best = ev->routes();
      idle = 0;
    } else {
      ++idle;
      ev = std::make_unique<Evaluator>(m, best);
    }
    if (spent >= lim.evaluations || std::chrono::steady_clock::now() > lim.hard_stop) break;
  }
  return best;
}

}  // namespace

bool ClearlyBetter(const Objective& a, const Objective& b, double margin_min) {
  if (a.vip_down + a.vip_late != b.vip_down + b.vip_late)
    return a.vip_down + a.vip_late < b.vip_down + b.vip_late;
  if (a.key_down + a.key_late != b.key_down + b.key_late)
    return a.key_down + a.key_late < b.key_down + b.key_late;
  const double gain =
      (b.weighted_down_min - a.weighted_down_min) + 0.25 * (b.risk_down_min - a.risk_down_min);
  return gain >= margin_min;
}

namespace {

// The grid managers' rule (the seed's day): VIP sites first, then key sites,
// then by predicted battery endurance (P50); each site goes to the crew that
// reaches it first after its current route.
Routes SeedRule(const PlanModel& m) {
  Routes routes = m.CommittedRoutes();
  std::vector<int> order = m.PendingSites(routes);
  std::stable_sort(order.begin(), order.end(), [&m](int a, int b) {
    if (m.TierRank(a) != m.TierRank(b)) return m.TierRank(a) < m.TierRank(b);
    return m.EnduranceMin(a) < m.EnduranceMin(b);
  });
  // Where and when each crew is free after its route so far.
  std::vector<double> free_at(m.crew_count());
  std::vector<int> last(m.crew_count(), -1);
  for (int c = 0; c < m.crew_count(); ++c) {
    free_at[c] = m.FreeAfter(routes[c], c);
    if (!routes[c].empty()) last[c] = routes[c].back();
  }
  for (int site : order) {
    int best_crew = -1;
    double best_arrival = std::numeric_limits<double>::infinity();
    for (int c = 0; c < m.crew_count(); ++c) {
      if (!m.CanServe(c, site) || static_cast<int>(routes[c].size()) >= m.Capacity(c)) continue;
      double arrival = free_at[c] + m.Travel(c, last[c], site);
      if (arrival < best_arrival) {
        best_arrival = arrival;
        best_crew = c;
      }
    }
    if (best_crew >= 0) {
      routes[best_crew].push_back(site);
      free_at[best_crew] = best_arrival + m.Hookup(site);
      last[best_crew] = site;
    }
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
    // Deterministic effort: a number of move evaluations (about 1,000 per ms
    // on the reference machine), with a wall-clock stop at twice the budget
    // only as a safety on a much slower one.
    const long evals = std::max<long>(2000, static_cast<long>(options.budget_ms) * 1000);
    const auto stop = std::chrono::steady_clock::now() +
                      std::chrono::milliseconds(std::max(5000, 20 * options.budget_ms));
    // Three starts, each improved by local search: the warm start (the last
    // plan) completed by insertion, the seed's rule, and (up to 400 sites)
    // nearest-first. The best one then gets the rest of the effort in large
    // neighbourhood search. Never worse than the baselines.
    Evaluator ev(m, m.WarmStart());
    Construct(m, ev, m.PendingSites(ev.routes()), Limits{evals / 4, stop});
    // The previous plan, repaired: what the crews hold now plus the new
    // sites where they cost least. Kept unless the search beats it clearly.
    const Routes incumbent = ev.routes();
    const Objective incumbent_objective = m.Evaluate(incumbent);
    Improve(m, ev, Limits{ev.evaluations() + evals / 4, stop}, options.seed);
    long spent = ev.evaluations();
    routes = ev.routes();
    double best = ev.cost();
    std::vector<Routes> alternatives{SeedRule(m)};
    if (input.sites.size() <= 400) alternatives.push_back(NearestFirst(m));
    for (Routes& alt : alternatives) {
      Evaluator ea(m, std::move(alt));
      Improve(m, ea, Limits{evals / 4, stop}, options.seed + 1);
      spent += ea.evaluations();
      if (ea.cost() < best - 1e-9) {
        best = ea.cost();
        routes = ea.routes();
      }
    }
    if (evals - spent > 0)
      routes = Lns(m, routes, Limits{evals - spent, stop}, options.seed, input);
    if (options.change_margin_min > 0 && !input.previous_routes.empty() &&
        !ClearlyBetter(m.Evaluate(routes), incumbent_objective, options.change_margin_min)) {
      Plan kept = m.ToPlan(incumbent);
      kept.kept_previous = true;
      return kept;
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
