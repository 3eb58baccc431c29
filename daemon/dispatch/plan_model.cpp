#include "dispatch/plan_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <numbers>
#include <set>

namespace sitepower::dispatch {
namespace {

constexpr double kNever = 1e18;

double MinutesFrom(core::TimePoint now, core::TimePoint t) { return core::ToMinutes(t - now); }

std::string Duration(double min) {
  if (min < 0) return "-" + Duration(-min);
  char buf[32];
  int total = static_cast<int>(std::lround(min));
  if (total < 60)
    std::snprintf(buf, sizeof buf, "%d min", total);
  else
    std::snprintf(buf, sizeof buf, "%d h %02d", total / 60, total % 60);
  return buf;
}

std::string JoinFirst(const std::vector<core::SiteId>& ids, size_t n) {
  std::string out;
  for (size_t i = 0; i < ids.size() && i < n; ++i) out += (i ? ", " : "") + ids[i];
  if (ids.size() > n) out += ", ...";
  return out;
}

std::string TierWord(core::Tier t) {
  return t == core::Tier::kVip ? "VIP" : t == core::Tier::kKey ? "key" : "standard";
}

}  // namespace

std::string PlanModel::OrderWhy(int a, int b) const {
  const SiteInfo& x = sites_[a];
  const SiteInfo& y = sites_[b];
  if (x.tier_rank < y.tier_rank)
    return TierWord(in_.sites[a].tier) + " before " + TierWord(in_.sites[b].tier);
  if (x.tier_rank == y.tier_rank && x.downstream.size() > y.downstream.size())
    return "its loss takes " + std::to_string(x.downstream.size() - 1) + " more sites off air";
  if (x.deadline + 1 < y.deadline)
    return "earlier deadline (" + Duration(x.deadline) + " vs " + Duration(y.deadline) + ")";
  return "on the way, " + in_.sites[b].id + "'s deadline leaves room";
}

PlanModel::PlanModel(const PlanInput& in, double keep_margin_min)
    : in_(in), keep_margin_min_(keep_margin_min) {
  const core::TimePoint now = in.now;
  const double horizon =
      in.horizon_end == core::TimePoint{} ? 24 * 60.0 : MinutesFrom(now, in.horizon_end);
  std::map<core::SiteId, int> index;
  for (size_t i = 0; i < in.sites.size(); ++i) index[in.sites[i].id] = static_cast<int>(i);
  std::set<core::SiteId> held(in.held.begin(), in.held.end());
  std::vector<std::vector<int>> fed_by(in.sites.size());
  for (size_t i = 0; i < in.sites.size(); ++i)
    for (const auto& f : in.sites[i].feeds)
      if (auto it = index.find(f); it != index.end())
        fed_by[it->second].push_back(static_cast<int>(i));

  sites_.resize(in.sites.size());
  for (size_t i = 0; i < in.sites.size(); ++i) {
    const SiteNeed& n = in.sites[i];
    SiteInfo& s = sites_[i];
    s.vip = n.tier == core::Tier::kVip;
    s.key = n.tier == core::Tier::kKey;
    s.uses_p10 = s.vip || s.key || !n.feeds.empty();
    s.deadline = MinutesFrom(now, s.uses_p10 ? n.deadline_p10 : n.deadline_p50);
    s.deadline_p10 = MinutesFrom(now, n.deadline_p10);
    s.deadline_p50 = MinutesFrom(now, n.deadline_p50);
    s.deadline_p90 = MinutesFrom(now, n.deadline_p90);
    s.deadline_sd = std::max(0.0, MinutesFrom(n.deadline_p10, n.deadline_p90) / 2.5631);
    s.tier_rank = n.tier == core::Tier::kVip ? 0 : n.tier == core::Tier::kKey ? 1 : 2;
    s.end = std::min(horizon, n.mains_restore_at ? MinutesFrom(now, *n.mains_restore_at) : kNever);
    s.hookup = n.hookup_min;
    s.weight = in.weights.Of(n.tier);
    s.can_go_down = !n.served && !n.fixed_generator;
    s.needs = s.can_go_down && !held.count(n.id);
    // Transitive upstream set (feeds are acyclic by contract; guard anyway).
    std::set<int> seen;
    std::function<void(int)> up = [&](int k) {
      if (!seen.insert(k).second) return;
      for (int f : fed_by[k]) up(f);
    };
    up(static_cast<int>(i));
    s.upstream.assign(seen.begin(), seen.end());
  }
  std::map<core::CrewId, int> crew_index;
  crews_.resize(in.crews.size());
  for (size_t c = 0; c < in.crews.size(); ++c) {
    const CrewState& cs = in.crews[c];
    crew_index[cs.id] = static_cast<int>(c);
    CrewInfo& ci = crews_[c];
    ci.start = std::max(0.0, MinutesFrom(now, cs.available_from));
    ci.gone = cs.unavailable_from ? MinutesFrom(now, *cs.unavailable_from) : kNever;
    ci.speed = cs.speed_kmh > 0 ? cs.speed_kmh : in.travel.speed_kmh;
    ci.generators = std::max(0, cs.generators_left);
    ci.reserve = std::clamp(static_cast<int>(cs.reserved_for.size()), 0, ci.generators);
    for (const auto& id : cs.committed) {
      auto it = index.find(id);
      if (it != index.end() && static_cast<int>(ci.committed.size()) < ci.generators &&
          sites_[it->second].can_go_down && !sites_[it->second].committed) {
        ci.committed.push_back(it->second);
        sites_[it->second].committed = true;
      }
    }
  }
  for (size_t i = 0; i < in.sites.size(); ++i)
    if (in.sites[i].current_crew)
      if (auto c = crew_index.find(*in.sites[i].current_crew); c != crew_index.end())
        sites_[i].current_crew = c->second;
  for (const auto& p : in.pins) {
    auto s = index.find(p.site);
    auto c = crew_index.find(p.crew);
    if (s != index.end() && c != crew_index.end()) sites_[s->second].pinned_crew = c->second;
  }
  for (size_t i = 0; i < sites_.size(); ++i)
    for (int u : sites_[i].upstream) sites_[u].downstream.push_back(static_cast<int>(i));
  constexpr double kRad = std::numbers::pi / 180.0;
  for (const auto& s : in.sites) site_cos_lat_.push_back(std::cos(s.location.lat * kRad));
  for (const auto& c : in.crews) crew_cos_lat_.push_back(std::cos(c.location.lat * kRad));
  start_km_.resize(crews_.size() * sites_.size());
  for (size_t c = 0; c < crews_.size(); ++c)
    for (size_t i = 0; i < sites_.size(); ++i)
      start_km_[c * sites_.size() + i] =
          Km(in.crews[c].location, crew_cos_lat_[c], in.sites[i].location, site_cos_lat_[i]);
  // Candidate crews: the nearest ones (by travel time from where they start),
  // enough that every site has a real choice, plus its current and pinned crew.
  const size_t k = std::min<size_t>(crews_.size(), 12);
  std::vector<std::pair<double, int>> by_time(crews_.size());
  for (size_t i = 0; i < sites_.size(); ++i) {
    SiteInfo& s = sites_[i];
    if (!s.needs) continue;
    if (s.pinned_crew >= 0) {
      s.candidates = {s.pinned_crew};
      continue;
    }
    for (size_t c = 0; c < crews_.size(); ++c)
      by_time[c] = {crews_[c].start + Travel(static_cast<int>(c), -1, static_cast<int>(i)),
                    static_cast<int>(c)};
    std::partial_sort(by_time.begin(), by_time.begin() + static_cast<long>(k), by_time.end());
    for (size_t j = 0; j < k; ++j) s.candidates.push_back(by_time[j].second);
    if (s.current_crew >= 0 &&
        std::find(s.candidates.begin(), s.candidates.end(), s.current_crew) == s.candidates.end())
      s.candidates.push_back(s.current_crew);
  }
}

double PlanModel::RouteRuns(int crew, const std::vector<int>& route,
                            std::vector<double>* runs) const {
  runs->assign(route.size(), kNever);
  const CrewInfo& ci = crews_[crew];
  // Generators held back for VIP and key sites still on mains: standard
  // stops beyond the rest are not served (the crew does not go there).
  const int standard_quota = ci.generators - ci.reserve;
  double t = ci.start, travel = 0;
  int at = -1, used = 0, standard = 0;
  for (size_t k = 0; k < route.size() && used < ci.generators; ++k) {
    int s = route[k];
    // (A crew already on its way to a standard site is not turned back.)
    if (!Preempts(s) && !sites_[s].committed && standard >= standard_quota) continue;
    double leg = Travel(crew, at, s);
    double run = t + leg + sites_[s].hookup;
    if (run > ci.gone) break;
    travel += leg;
    (*runs)[k] = run;
    t = run;
    at = s;
    ++used;
    if (!Preempts(s)) ++standard;
  }
  return travel;
}

bool PlanModel::CanServe(int crew, int site) const {
  return sites_[site].pinned_crew < 0 || sites_[site].pinned_crew == crew;
}

Routes PlanModel::CommittedRoutes() const {
  Routes r(crews_.size());
  std::set<int> taken;
  for (size_t c = 0; c < crews_.size(); ++c)
    for (int s : crews_[c].committed)
      if (taken.insert(s).second) r[c].push_back(s);
  return r;
}

Routes PlanModel::WarmStart() const {
  Routes r = CommittedRoutes();
  if (in_.previous_routes.empty()) return r;
  std::map<core::SiteId, int> index;
  for (size_t i = 0; i < in_.sites.size(); ++i) index[in_.sites[i].id] = static_cast<int>(i);
  std::vector<bool> taken(sites_.size(), false);
  for (const auto& route : r)
    for (int s : route) taken[s] = true;
  for (size_t c = 0; c < crews_.size(); ++c) {
    auto it = in_.previous_routes.find(in_.crews[c].id);
    if (it == in_.previous_routes.end()) continue;
    for (const auto& id : it->second) {
      auto s = index.find(id);
      if (s == index.end() || taken[s->second] || !sites_[s->second].needs ||
          !CanServe(static_cast<int>(c), s->second) ||
          static_cast<int>(r[c].size()) >= crews_[c].generators)
        continue;
      taken[s->second] = true;
      r[c].push_back(s->second);
    }
  }
  return r;
}

std::vector<int> PlanModel::PendingSites(const Routes& routes) const {
  std::vector<bool> in_route(sites_.size(), false);
  for (const auto& r : routes)
    for (int s : r) in_route[s] = true;
  std::vector<int> out;
  for (size_t i = 0; i < sites_.size(); ++i)
    if (sites_[i].needs && !in_route[i]) out.push_back(static_cast<int>(i));
  return out;
}

double PlanModel::Km(core::LatLon a, double cos_a, core::LatLon b, double cos_b) const {
  // core::HaversineKm with the cosines supplied.
  constexpr double kRad = std::numbers::pi / 180.0;
  double dlat = (b.lat - a.lat) * kRad;
  double dlon = (b.lon - a.lon) * kRad;
  double h = std::sin(dlat / 2) * std::sin(dlat / 2) +
             cos_a * cos_b * std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * core::kEarthRadiusKm * std::asin(std::min(1.0, std::sqrt(h)));
}

double PlanModel::Travel(int crew, int from, int to) const {
  double km = from < 0 ? start_km_[static_cast<size_t>(crew) * sites_.size() + to]
                       : Km(in_.sites[from].location, site_cos_lat_[from], in_.sites[to].location,
                            site_cos_lat_[to]);
  return km * in_.travel.road_factor / crews_[crew].speed * 60.0;
}

double PlanModel::FreeAfter(const std::vector<int>& route, int crew) const {
  double t = crews_[crew].start;
  int at = -1;
  for (int s : route) {
    t += Travel(crew, at, s) + sites_[s].hookup;
    at = s;
  }
  return t;
}

double PlanModel::ArrivalIfAppended(const std::vector<int>& route, int crew, int site) const {
  double t = crews_[crew].start;
  int at = -1;
  for (int s : route) {
    t += Travel(crew, at, s) + sites_[s].hookup;
    at = s;
  }
  return t + Travel(crew, at, site);
}

std::vector<double> PlanModel::RunningTimes(const Routes& routes, double* travel) const {
  std::vector<double> running(sites_.size(), kNever), runs;
  double total = 0;
  for (size_t c = 0; c < routes.size(); ++c) {
    total += RouteRuns(static_cast<int>(c), routes[c], &runs);
    for (size_t k = 0; k < routes[c].size(); ++k)
      running[routes[c][k]] = std::min(running[routes[c][k]], runs[k]);
  }
  if (travel) *travel = total;
  return running;
}

Objective PlanModel::Evaluate(const Routes& routes) const {
  Objective o;
  std::vector<double> running = RunningTimes(routes, &o.travel_min);
  for (size_t c = 0; c < routes.size(); ++c)
    for (int s : routes[c]) o.churn_min += ChurnOf(static_cast<int>(c), s);
  std::vector<std::pair<double, double>> scratch;
  for (int i = 0; i < site_count(); ++i) {
    SiteCost sc = CostOf(i, running, scratch);
    o.vip_down += sc.vip_down;
    o.key_down += sc.key_down;
    o.vip_late += sc.vip_late;
    o.key_late += sc.key_late;
    o.weighted_down_min += sc.down;
    o.risk_down_min += sc.risk;
  }
  return o;
}

PlanModel::SiteCost PlanModel::CostOf(int i, const std::vector<double>& running,
                                      std::vector<std::pair<double, double>>& scratch) const {
  SiteCost out;
  const SiteInfo& si = sites_[i];
  auto interval = [&](int u, bool risk) -> std::pair<double, double> {
    const SiteInfo& s = sites_[u];
    if (!s.can_go_down) return {0, 0};
    double stop = std::min(running[u], s.end);
    double from = risk ? s.deadline_p10 : s.deadline;
    return stop > from ? std::pair<double, double>{from, stop} : std::pair<double, double>{0, 0};
  };
  // Whether it is down at all (VIP and key sites on their P10): the counts.
  double counted = 0;
  if (si.upstream.size() == 1) {  // the common case: fed by nobody
    auto own = interval(i, false), risk = interval(i, true);
    counted = own.second - own.first;
    out.risk = risk.second - risk.first;
  } else {
    for (int pass = 0; pass < 2; ++pass) {
      scratch.clear();
      for (int u : si.upstream) {
        auto iv = interval(u, pass == 1);
        if (iv.second > iv.first) scratch.push_back(iv);
      }
      double total = 0;
      if (!scratch.empty()) {
        std::sort(scratch.begin(), scratch.end());
        double cs = scratch[0].first, ce = scratch[0].second;
        for (size_t k = 1; k < scratch.size(); ++k) {
          if (scratch[k].first <= ce) {
            ce = std::max(ce, scratch[k].second);
          } else {
            total += ce - cs;
            cs = scratch[k].first;
            ce = scratch[k].second;
          }
        }
        total += ce - cs;
      }
      (pass == 0 ? counted : out.risk) = total;
    }
  }
  // How long, in expectation over the runtime bands: its own battery and
  // every site it depends on (their outages taken as adding up). A plan
  // that leaves margin where the band is wide is worth more than one that
  // lands on the median.
  for (int u : si.upstream)
    if (sites_[u].can_go_down) out.down += ExpectedDown(u, std::min(running[u], sites_[u].end));
  out.vip_down = si.vip && counted > 1e-9;
  out.key_down = si.key && counted > 1e-9;
  if ((si.vip || si.key) && si.can_go_down) {
    const double stop = std::min(running[i], si.end);
    const int late = (stop > si.deadline_p50 ? 1 : 0) + (stop > si.deadline_p90 ? 1 : 0);
    (si.vip ? out.vip_late : out.key_late) = late;
  }
  out.down *= si.weight;
  out.risk *= si.weight;
  return out;
}

double PlanModel::ExpectedDown(int u, double stop) const {
  const SiteInfo& s = sites_[u];
  const double mu = s.deadline_p50, sd = s.deadline_sd;
  if (sd < 1e-6) return std::max(0.0, stop - mu);
  // E[(stop - D)+] for D ~ N(mu, sd) is sd g(k), k = (stop - mu) / sd,
  // g(k) = k Phi(k) + phi(k): tabulated once (the planner's hot path).
  constexpr double kLo = -8, kHi = 8, kStep = 1.0 / 64;
  static const std::vector<double> table = [] {
    std::vector<double> t;
    for (double k = kLo; k <= kHi + kStep; k += kStep)
      t.push_back(k * 0.5 * std::erfc(-k / std::numbers::sqrt2) +
                  std::exp(-0.5 * k * k) / std::sqrt(2 * std::numbers::pi));
    return t;
  }();
  const double k = (stop - mu) / sd;
  if (k <= kLo) return 0;
  if (k >= kHi) return stop - mu;
  const double x = (k - kLo) / kStep;
  const size_t i = static_cast<size_t>(x);
  const double f = x - static_cast<double>(i);
  return sd * (table[i] + f * (table[i + 1] - table[i]));
}

double PlanModel::Cost(const Routes& routes) const {
  Objective o = Evaluate(routes);
  return Total(o.vip_down + o.vip_late, o.key_down + o.key_late, o.weighted_down_min,
               o.risk_down_min, o.travel_min, o.churn_min);
}

Plan PlanModel::ToPlan(const Routes& routes) const {
  Plan plan;
  plan.objective = Evaluate(routes);
  std::vector<double> running = RunningTimes(routes, nullptr);
  std::vector<bool> served(sites_.size(), false);
  std::map<core::SiteId, int> index_of;
  for (size_t i = 0; i < in_.sites.size(); ++i) index_of[in_.sites[i].id] = static_cast<int>(i);
  for (size_t c = 0; c < routes.size(); ++c) {
    CrewRoute cr{in_.crews[c].id, {}};
    std::vector<double> runs;
    RouteRuns(static_cast<int>(c), routes[c], &runs);
    for (size_t k = 0; k < routes[c].size(); ++k) {
      const int s = routes[c][k];
      if (runs[k] >= kNever / 2) continue;  // not reached, or held back by the reserve
      const double run = runs[k], arrival = run - sites_[s].hookup;
      const SiteInfo& si = sites_[s];
      const SiteNeed& n = in_.sites[s];
      Stop stop;
      stop.site = n.id;
      stop.eta = in_.now + core::FromMinutes(arrival);
      stop.running_at = in_.now + core::FromMinutes(run);
      stop.deadline = in_.now + core::FromMinutes(si.deadline);
      stop.margin_min = si.deadline - run;
      std::string r = TierWord(n.tier);
      if (!n.feeds.empty()) r += ", feeds " + std::to_string(n.feeds.size()) + " sites";
      if (si.pinned_crew >= 0) r += ", pinned by NOC";
      // The deadline as a time, and what is left of the battery until then:
      // the runtime band counts from now, not from the mains failure.
      r +=
          std::string("; ") + (si.uses_p10 ? "P10" : "P50") + " deadline " +
          core::FormatHhMm(stop.deadline, in_.offset_min) +
          (si.deadline > 0 ? " (battery " + Duration(si.deadline) + " left)" : " (battery empty)") +
          "; " + cr.crew + " arrives " + core::FormatHhMm(stop.eta, in_.offset_min) + ", ";
      if (si.end <= si.deadline)
        r += "mains due back before the battery ends";
      else if (stop.margin_min >= 0)
        r += Duration(stop.margin_min) + " margin";
      else
        r += "generator " + Duration(-stop.margin_min) + " after the deadline";
      if (!in_.crews[c].reserved_for.empty())
        r += "; " + cr.crew + " holds " + std::to_string(crews_[c].reserve) +
             " generator(s) for VIP/key sites still on mains (" +
             JoinFirst(in_.crews[c].reserved_for, 3) + ")";
      stop.reason = std::move(r);
      cr.stops.push_back(std::move(stop));
      served[s] = true;
    }
    // What put each stop before the next one on the route.
    for (size_t k = 0; k + 1 < cr.stops.size(); ++k) {
      const int a = index_of.at(cr.stops[k].site), b = index_of.at(cr.stops[k + 1].site);
      cr.stops[k].reason += "; before " + cr.stops[k + 1].site + ": " + OrderWhy(a, b);
    }
    plan.routes.push_back(std::move(cr));
  }
  for (size_t i = 0; i < sites_.size(); ++i)
    if (sites_[i].needs && !served[i]) plan.unserved.push_back(in_.sites[i].id);
  return plan;
}

}  // namespace sitepower::dispatch
