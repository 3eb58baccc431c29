// Operator overrides (authenticated, audited) and the persistence of site
// state that lets a restarted daemon keep its outage clock.
#include <nlohmann/json.hpp>

#include "app/engine.hpp"
#include "app/engine_state.hpp"
#include "app/log.hpp"

namespace sitepower::app {

using json = nlohmann::json;

core::Result<std::string> Engine::Override(const std::string& who, const std::string& body) {
  // The web server authenticated `who` (a NOC operator) before calling.
  if (who.empty()) return core::Status::PermissionDenied("overrides need a NOC operator");
  json req = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!req.is_object()) return core::Status::InvalidArgument("body: expected a JSON object");
  auto str = [&req](const char* k) {
    return req.contains(k) && req[k].is_string() ? req[k].get<std::string>() : std::string();
  };
  std::string action = str("action"), site = str("site"), crew = str("crew"), why = str("why");
  if (why.empty()) return core::Status::InvalidArgument("why: every override needs a reason");
  auto need_site = [this, &site]() -> core::Status {
    if (site.empty()) return core::Status::InvalidArgument("site: required for this action");
    if (!sites_.count(site)) return core::Status::NotFound("site: unknown site '" + site + "'");
    return core::Status::Ok();
  };
  auto need_crew = [this, &crew]() -> core::Status {
    if (crew.empty()) return core::Status::InvalidArgument("crew: required for this action");
    if (!crews_.count(crew)) return core::Status::NotFound("crew: unknown crew '" + crew + "'");
    return core::Status::Ok();
  };
  std::string done;
  if (action == "pin") {
    if (auto s = need_site(); !s.ok()) return s;
    if (auto s = need_crew(); !s.ok()) return s;
    pins_[site] = crew;
    held_.erase(site);
    done = site + " pinned to crew " + crew;
  } else if (action == "protect_vip") {
    if (auto s = need_site(); !s.ok()) return s;
    std::string until = str("until");
    core::TimePoint until_at;
    auto iso = core::ParseIso8601(until);
    if (iso.ok()) {
      until_at = iso->at;
    } else {
      core::ZonedTime today{clock_.Now(), config_.utc_offset_min};
      auto hhmm = core::ParseHhMmOn(until, today);
      if (!hhmm.ok()) return core::Status::InvalidArgument("until: expected HH:MM or ISO 8601");
      until_at = *hhmm;
    }
    protected_vip_until_[site] = until_at;
    done = site + " protected as VIP until " + FormatTime(until_at);
  } else if (action == "hold" || action == "cancel") {
    if (auto s = need_site(); !s.ok()) return s;
    held_[site] = true;
    pins_.erase(site);
    done = action == "hold" ? site + " held: no dispatch until cleared"
                            : site + " task cancelled by the NOC; site held";
  } else if (action == "clear") {
    if (auto s = need_site(); !s.ok()) return s;
    pins_.erase(site);
    held_.erase(site);
    protected_vip_until_.erase(site);
    done = site + " overrides cleared";
  } else if (action == "crew_unavailable" || action == "crew_available") {
    if (auto s = need_crew(); !s.ok()) return s;
    crews_[crew]->unavailable = action == "crew_unavailable";
    done = "crew " + crew +
           (action == "crew_unavailable" ? " marked unavailable" : " available again");
  } else {
    return core::Status::InvalidArgument(
        "action: expected pin|protect_vip|hold|cancel|clear|crew_unavailable|crew_available, got "
        "'" +
        action + "'");
  }
  ++counters_.overrides;
  store::AuditRecord audit{clock_.Now().time_since_epoch().count(), who, "noc",
                           "override." + action, done + " (why: " + why + ")"};
  if (auto st = store_.AppendAudit(audit); !st.ok()) {
    LogLine(LogLevel::kError, "audit", {{"error", st.message()}});
    return core::Status::Unavailable("override not applied: audit log write failed: " +
                                     st.message());
  }
  PersistOverrides();
  Log("override", site, crew, "", done + " by " + who + ": " + why);
  ScheduleReplan("override: " + done);
  return json{{"ok", true}, {"message", done}, {"by", who}}.dump();
}

void Engine::PersistOverrides() {
  json pins = json::object(), vip = json::object(), held = json::array(), off = json::array();
  for (const auto& [site, crew] : pins_) pins[site] = crew;
  for (const auto& [site, until] : protected_vip_until_)
    vip[site] = until.time_since_epoch().count();
  for (const auto& [site, h] : held_)
    if (h) held.push_back(site);
  for (const auto& [id, c] : crews_)
    if (c->unavailable) off.push_back(id);
  store::Commit c;
  c.kv.push_back({"overrides/all",
                  json{{"pins", pins}, {"vip", vip}, {"held", held}, {"crews_off", off}}.dump()});
  if (auto st = store_.Apply(c); !st.ok())
    LogLine(LogLevel::kError, "store", {{"error", st.message()}});
}

void Engine::PersistSite(const SiteRuntime& s) {
  json j = {{"mains_fail_at", s.mains_fail_at ? s.mains_fail_at->time_since_epoch().count() : 0},
            {"generator_running", s.generator_running}};
  store::Commit c;
  c.kv.push_back({"site/" + s.cfg.id, j.dump()});
  if (auto st = store_.Apply(c); !st.ok())
    LogLine(LogLevel::kError, "store", {{"site", s.cfg.id}, {"error", st.message()}});
}

// After a restart the outage clock of each site continues from the store, so a
// kill -9 does not make a battery look fresh.
void Engine::RestoreState() {
  auto sites = store_.LoadKv("site/");
  if (sites.ok()) {
    for (const auto& [key, value] : *sites) {
      auto it = sites_.find(key.substr(5));
      json j = json::parse(value, nullptr, false);
      if (it == sites_.end() || !j.is_object()) continue;
      int64_t fail = j.value("mains_fail_at", int64_t{0});
      if (fail) {
        it->second->mains_fail_at = core::TimePoint(core::Millis(fail));
        it->second->tracker.RestoreMainsFailed();
      }
      it->second->generator_running = j.value("generator_running", false);
    }
  }
  auto health = store_.LoadKv("health/");
  if (health.ok()) {
    for (const auto& [key, value] : *health) {
      auto it = sites_.find(key.substr(7));
      model::BatteryHealth h;
      if (it != sites_.end() && model::HealthFromJson(value, &h)) it->second->health = h;
    }
  }
  auto ov = store_.LoadKv("overrides/all");
  if (ov.ok() && ov->count("overrides/all")) {
    json j = json::parse(ov->at("overrides/all"), nullptr, false);
    if (j.is_object()) {
      // Named copies: iterating items() of a temporary would dangle.
      const json pins = j.value("pins", json::object()), vip = j.value("vip", json::object());
      const json held = j.value("held", json::array()), off = j.value("crews_off", json::array());
      for (const auto& [site, crew] : pins.items()) pins_[site] = crew.get<std::string>();
      for (const auto& [site, ms] : vip.items())
        protected_vip_until_[site] = core::TimePoint(core::Millis(ms.get<int64_t>()));
      for (const auto& site : held) held_[site.get<std::string>()] = true;
      for (const auto& crew : off)
        if (crews_.count(crew.get<std::string>()))
          crews_[crew.get<std::string>()]->unavailable = true;
    }
  }
}

}  // namespace sitepower::app
