// Plan JSON (FORMAT.md "Plan format") and plan validation; scenario accessors.
#include <nlohmann/json.hpp>

#include <set>

#include "scenario/scenario.hpp"

namespace sitepower::scenario {

using json = nlohmann::json;

std::string_view FaultKindName(FaultKind k) {
  switch (k) {
    case FaultKind::kTimeout:
      return "timeout";
    case FaultKind::kException:
      return "exception";
    case FaultKind::kGarbage:
      return "garbage";
    case FaultKind::kHalfOpen:
      return "half_open";
  }
  return "timeout";
}

const Site* Scenario::FindSite(const SiteId& id) const {
  for (const auto& s : sites)
    if (s.id == id) return &s;
  return nullptr;
}

const Crew* Scenario::FindCrew(const CrewId& id) const {
  for (const auto& c : crews)
    if (c.id == id) return &c;
  return nullptr;
}

std::optional<TimePoint> Scenario::FirstMainsFail(const SiteId& id) const {
  for (const auto& e : events)
    if (auto* f = std::get_if<MainsFail>(&e.body))
      for (const auto& s : f->sites)
        if (s == id) return e.at;
  return std::nullopt;
}

std::optional<TimePoint> Scenario::MainsRestoreAfterFail(const SiteId& id) const {
  auto fail = FirstMainsFail(id);
  if (!fail) return std::nullopt;
  for (const auto& e : events)
    if (auto* r = std::get_if<MainsRestore>(&e.body); r && e.at >= *fail)
      for (const auto& s : r->sites)
        if (s == id) return e.at;
  return std::nullopt;
}

std::optional<TimePoint> Scenario::CrewUnavailableAt(const CrewId& id) const {
  for (const auto& e : events)
    if (auto* c = std::get_if<CrewUnavailable>(&e.body); c && c->crew == id) return e.at;
  return std::nullopt;
}

std::string PlanToJson(const Plan& plan, int offset_min, bool pretty) {
  json routes = json::array();
  for (const auto& r : plan.routes) {
    json sites = json::array(), stops = json::array();
    for (const auto& st : r.stops) {
      sites.push_back(st.site);
      json j = {{"site", st.site}};
      if (st.eta) j["eta"] = core::FormatIso8601(*st.eta, offset_min);
      if (st.running_at) j["running_at"] = core::FormatIso8601(*st.running_at, offset_min);
      if (st.deadline) j["deadline"] = core::FormatIso8601(*st.deadline, offset_min);
      if (!st.reason.empty()) j["reason"] = st.reason;
      stops.push_back(std::move(j));
    }
    routes.push_back({{"crew", r.crew}, {"sites", sites}, {"stops", stops}});
  }
  json j = {{"scenario", plan.scenario},
            {"planned_at", core::FormatHhMm(plan.planned_at, offset_min)},
            {"routes", routes}};
  return pretty ? j.dump(2) : j.dump();
}

core::Result<Plan> PlanFromJson(const std::string& text, const Scenario& s) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return core::Status::InvalidArgument("plan: not a JSON object");
  Plan p;
  p.scenario = j.value("scenario", s.name);
  p.planned_at = s.start.at;
  for (const auto& e : s.events)
    if (std::holds_alternative<MainsFail>(e.body)) {
      p.planned_at = e.at;
      break;
    }
  if (j.contains("planned_at")) {
    if (!j["planned_at"].is_string())
      return core::Status::InvalidArgument("planned_at: expected a string");
    std::string at = j["planned_at"];
    if (at.find('T') != std::string::npos) {
      auto t = core::ParseIso8601(at);
      if (!t.ok()) return core::Status::InvalidArgument("planned_at: " + t.status().message());
      p.planned_at = t->at;
    } else {
      auto t = core::ParseHhMmOn(at, s.start);
      if (!t.ok()) return core::Status::InvalidArgument("planned_at: " + t.status().message());
      p.planned_at = *t;
    }
  }
  if (!j.contains("routes") || !j["routes"].is_array())
    return core::Status::InvalidArgument("routes: expected a list");
  for (size_t i = 0; i < j["routes"].size(); ++i) {
    const json& r = j["routes"][i];
    std::string where = "routes[" + std::to_string(i) + "]";
    if (!r.is_object() || !r.contains("crew") || !r["crew"].is_string() || !r.contains("sites") ||
        !r["sites"].is_array())
      return core::Status::InvalidArgument(where + ": expected {crew, sites}");
    Route route{r["crew"], {}};
    for (const auto& site : r["sites"]) {
      if (!site.is_string())
        return core::Status::InvalidArgument(where + ".sites: expected strings");
      route.stops.push_back(PlannedStop{site.get<std::string>(), {}, {}, {}, ""});
    }
    p.routes.push_back(std::move(route));
  }
  if (auto st = ValidatePlan(p, s); !st.ok()) return st;
  return p;
}

core::Status ValidatePlan(const Plan& plan, const Scenario& s) {
  std::set<CrewId> crews;
  std::set<SiteId> sites;
  for (const auto& r : plan.routes) {
    const Crew* c = s.FindCrew(r.crew);
    if (!c) return core::Status::InvalidArgument("plan names unknown crew '" + r.crew + "'");
    if (!crews.insert(r.crew).second)
      return core::Status::InvalidArgument("plan gives crew '" + r.crew + "' two routes");
    if (static_cast<int>(r.stops.size()) > c->generators)
      return core::Status::InvalidArgument("crew '" + r.crew + "' is given " +
                                           std::to_string(r.stops.size()) + " sites but carries " +
                                           std::to_string(c->generators) + " generators");
    for (const auto& st : r.stops) {
      if (!s.FindSite(st.site))
        return core::Status::InvalidArgument("plan names unknown site '" + st.site + "'");
      if (!sites.insert(st.site).second)
        return core::Status::InvalidArgument("plan lists site '" + st.site + "' twice");
    }
  }
  return core::Status::Ok();
}

}  // namespace sitepower::scenario
