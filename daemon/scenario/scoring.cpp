// FORMAT.md scoring: travel model, down intervals (own and through feeders),
// tier totals. Shared by `sitepowerctl plan`, the planner's tests and the drill.
#include <algorithm>
#include <functional>
#include <set>

#include "scenario/scenario.hpp"

namespace sitepower::scenario {
namespace {

using Interval = std::pair<TimePoint, TimePoint>;

double UnionMinutes(std::vector<Interval> v) {
  std::sort(v.begin(), v.end());
  double total = 0;
  std::optional<Interval> cur;
  for (const auto& iv : v) {
    if (iv.second <= iv.first) continue;
    if (cur && iv.first <= cur->second) {
      cur->second = std::max(cur->second, iv.second);
    } else {
      if (cur) total += core::ToMinutes(cur->second - cur->first);
      cur = iv;
    }
  }
  if (cur) total += core::ToMinutes(cur->second - cur->first);
  return total;
}

// Computes per-site down_min from each site's own down interval (if any),
// adding the intervals of every site that feeds it, directly or not.
Score Finish(const Scenario& s, const std::map<SiteId, std::optional<Interval>>& own,
             std::map<SiteId, SiteOutcome> outcomes, double travel_min) {
  std::map<SiteId, std::vector<SiteId>> fed_by;  // site -> its direct feeders
  for (const auto& site : s.sites)
    for (const auto& f : site.feeds) fed_by[f].push_back(site.id);
  Score score;
  score.travel_min = travel_min;
  for (const auto& site : s.sites) {
    std::vector<Interval> ivs;
    std::set<SiteId> seen;
    std::function<void(const SiteId&)> collect = [&](const SiteId& id) {
      if (!seen.insert(id).second) return;
      auto it = own.find(id);
      if (it != own.end() && it->second) ivs.push_back(*it->second);
      for (const auto& feeder : fed_by[id]) collect(feeder);
    };
    collect(site.id);
    SiteOutcome& o = outcomes[site.id];
    o.down_min = UnionMinutes(ivs);
    if (o.down_min > 1e-9) {
      if (site.tier == core::Tier::kVip)
        ++score.vip_down;
      else if (site.tier == core::Tier::kKey)
        ++score.key_down;
      else
        ++score.standard_down;
    }
    score.weighted_down_min += o.down_min * s.weights.Of(site.tier);
    if (o.generator_running_at && (!score.last_generator_running_at ||
                                   *o.generator_running_at > *score.last_generator_running_at))
      score.last_generator_running_at = o.generator_running_at;
  }
  score.sites = std::move(outcomes);
  return score;
}

// Own down interval of a site whose battery empties at `empty`.
std::optional<Interval> OwnDown(const Scenario& s, const Site& site, std::optional<TimePoint> empty,
                                std::optional<TimePoint> generator_at) {
  if (site.fixed_generator || !empty) return std::nullopt;
  auto fail = s.FirstMainsFail(site.id);
  if (!fail) return std::nullopt;
  TimePoint until = s.MainsRestoreAfterFail(site.id).value_or(s.end);
  until = std::min(until, s.end);
  if (generator_at && *generator_at > *empty) until = std::min(until, *generator_at);
  if (generator_at && *generator_at <= *empty) return std::nullopt;
  if (until <= *empty) return std::nullopt;
  return Interval{*empty, until};
}

}  // namespace

bool Score::BetterThan(const Score& o) const {
  if (vip_down != o.vip_down) return vip_down < o.vip_down;
  if (std::abs(weighted_down_min - o.weighted_down_min) > 1e-6)
    return weighted_down_min < o.weighted_down_min;
  return travel_min < o.travel_min - 1e-6;
}

Score ScorePlan(const Scenario& s, const Plan& plan, const std::map<SiteId, double>& runtime_min) {
  std::map<SiteId, SiteOutcome> outcomes;
  double travel = 0;
  for (const auto& route : plan.routes) {
    const Crew* crew = s.FindCrew(route.crew);
    if (!crew) continue;
    TimePoint t = std::max(plan.planned_at, crew->available_from.value_or(plan.planned_at));
    core::LatLon at = crew->location;
    auto gone = s.CrewUnavailableAt(crew->id);
    int generators = crew->generators;
    for (const auto& stop : route.stops) {
      const Site* site = s.FindSite(stop.site);
      if (!site || generators <= 0) break;
      double leg = core::TravelMinutes(at, site->location, s.travel, crew->speed_kmh.value_or(0));
      TimePoint running = t + core::FromMinutes(leg + s.HookupMin(*site));
      if (gone && running > *gone) break;
      travel += leg;
      t = running;
      at = site->location;
      --generators;
      SiteOutcome& o = outcomes[site->id];
      o.generator_running_at = running;
      o.crew = crew->id;
    }
  }
  std::map<SiteId, std::optional<Interval>> own;
  for (const auto& site : s.sites) {
    SiteOutcome& o = outcomes[site.id];
    o.mains_fail_at = s.FirstMainsFail(site.id);
    std::optional<double> rt;
    if (auto it = runtime_min.find(site.id); it != runtime_min.end())
      rt = it->second;
    else
      rt = site.runtime_min;
    if (o.mains_fail_at && rt) o.runtime_min = rt;
    std::optional<TimePoint> empty;
    if (o.mains_fail_at && rt) empty = *o.mains_fail_at + core::FromMinutes(*rt);
    own[site.id] = OwnDown(s, site, empty, o.generator_running_at);
  }
  return Finish(s, own, std::move(outcomes), travel);
}

Score ScoreObserved(const Scenario& s, const std::map<SiteId, Observed>& observed) {
  std::map<SiteId, SiteOutcome> outcomes;
  std::map<SiteId, std::optional<Interval>> own;
  for (const auto& site : s.sites) {
    SiteOutcome& o = outcomes[site.id];
    o.mains_fail_at = s.FirstMainsFail(site.id);
    auto it = observed.find(site.id);
    if (it == observed.end()) {
      own[site.id] = std::nullopt;
      continue;
    }
    o.generator_running_at = it->second.generator_running_at;
    o.crew = it->second.crew;
    o.runtime_min = it->second.runtime_min;
    own[site.id] = OwnDown(s, site, it->second.battery_empty_at, it->second.generator_running_at);
  }
  return Finish(s, own, std::move(outcomes), 0);
}

}  // namespace sitepower::scenario
