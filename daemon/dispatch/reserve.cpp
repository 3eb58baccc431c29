#include "dispatch/reserve.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace sitepower::dispatch {

int ReserveGenerators(PlanInput& in, const std::vector<SiteOnMains>& on_mains,
                      double failed_fraction) {
  for (auto& c : in.crews) c.reserved_for.clear();
  std::vector<const SiteOnMains*> at_risk;
  for (const auto& s : on_mains)
    if (s.tier == core::Tier::kVip || s.tier == core::Tier::kKey) at_risk.push_back(&s);
  if (at_risk.empty() || failed_fraction <= 0) return 0;
  int generators = 0;
  for (const auto& c : in.crews) generators += std::max(0, c.generators_left);
  const std::set<core::SiteId> held(in.held.begin(), in.held.end());
  int need_now = 0;
  for (const auto& s : in.sites)
    if (!s.served && !s.fixed_generator && !held.count(s.id)) ++need_now;
  const double expected = std::min(1.0, failed_fraction) * static_cast<double>(at_risk.size());
  if (generators >= need_now + expected) return 0;  // enough for everyone
  const int keep = std::min(generators, static_cast<int>(std::ceil(expected - 1e-9)));
  // VIP first; within a tier, the site nearest to a crew (the cheapest to cover).
  auto nearest = [&in](const SiteOnMains& s) {
    double best = std::numeric_limits<double>::infinity();
    for (const auto& c : in.crews)
      if (c.generators_left > 0) best = std::min(best, core::HaversineKm(c.location, s.location));
    return best;
  };
  std::stable_sort(at_risk.begin(), at_risk.end(),
                   [&nearest](const SiteOnMains* a, const SiteOnMains* b) {
                     if (a->tier != b->tier) return a->tier == core::Tier::kVip;
                     return nearest(*a) < nearest(*b);
                   });
  int held_total = 0;
  for (const SiteOnMains* s : at_risk) {
    if (held_total >= keep) break;
    CrewState* best = nullptr;
    double best_km = std::numeric_limits<double>::infinity();
    for (auto& c : in.crews) {
      if (static_cast<int>(c.reserved_for.size()) >= c.generators_left) continue;
      double km = core::HaversineKm(c.location, s->location);
      if (km < best_km) best_km = km, best = &c;
    }
    if (!best) break;
    best->reserved_for.push_back(s->id);
    ++held_total;
  }
  return held_total;
}

}  // namespace sitepower::dispatch
