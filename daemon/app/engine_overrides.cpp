// Operator overrides (authenticated, audited) and the persistence of site
// state that lets a restarted daemon keep its outage clock.
#include <nlohmann/json.hpp>

#include "app/engine.hpp"
#include "app/log.hpp"
#include "app/token.hpp"

namespace sitepower::app {

using json = nlohmann::json;

core::Result<std::string> Engine::Override(const std::string& bearer_token,
                                           const std::string& body) {
  std::string who;
  const std::string sha = Sha256Hex(bearer_token);
  for (const auto& t : config_.noc_tokens)
    if (!bearer_token.empty() && t.sha256 == sha) who = t.name;
  if (who.empty()) {
    for (const auto& c : config_.crews)
      if (!bearer_token.empty() && c.token_sha256 == sha)
        return core::Status::PermissionDenied("overrides need a NOC token; crew " + c.id +
                                              " may not override the plan");
    return core::Status::Unauthenticated("missing or unknown bearer token");
  }
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
    done = "crew " + crew + (action == "crew_unavailable" ? " marked unavailable" : " available again");
  } else {
    return core::Status::InvalidArgument(
        "action: expected pin|protect_vip|hold|cancel|clear|crew_unavailable|crew_available, got '" +
        action + "'");
  }
  ++counters_.overrides;
  if (auto st = store_.AppendAudit(AuditRecord(who, action, done + " (why: " + why + ")")); !st.ok()) {
    LogLine(LogLevel::kError, "audit", {{"error", st.message()}});
    return core::Status::Unavailable("override not applied: audit log write failed: " + st.message());
  }
  PersistOverrides();
  Log("override", site, crew, "", done + " by " + who + ": " + why);
  ScheduleReplan("override: " + done);
  return json{{"ok", true}, {"message", done}, {"by", who}}.dump();
}

}  // namespace sitepower::app
