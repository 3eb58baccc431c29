// The engine's outward views: NOC gRPC snapshots, dashboard JSON, /metrics,
// operator overrides and site-state persistence.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <sstream>

#include "api/convert.hpp"
#include "app/engine.hpp"
#include "app/engine_state.hpp"
#include "app/log.hpp"

namespace sitepower::app {

using core::TimePoint;
using json = nlohmann::json;
namespace v1 = sitepower::v1;

namespace {

int64_t Ms(TimePoint t) { return t.time_since_epoch().count(); }

v1::PowerState ToProto(core::PowerState s) {
  switch (s) {
    case core::PowerState::kUnknown:
      return v1::POWER_STATE_UNSPECIFIED;
    case core::PowerState::kOnMains:
      return v1::POWER_STATE_ON_MAINS;
    case core::PowerState::kOnBattery:
      return v1::POWER_STATE_ON_BATTERY;
    case core::PowerState::kOnGenerator:
      return v1::POWER_STATE_ON_GENERATOR;
    case core::PowerState::kDown:
      return v1::POWER_STATE_DOWN;
    case core::PowerState::kStale:
      return v1::POWER_STATE_STALE;
  }
  return v1::POWER_STATE_UNSPECIFIED;
}

}  // namespace

void Engine::PublishViews() {
  TimePoint now = clock_.Now();
  ++version_;
  std::map<core::SiteId, tasks::Task> task_by_site;
  std::vector<tasks::Task> open = ledger_.OpenTasks();
  for (const auto& t : open) task_by_site[t.site] = t;

  v1::ListSitesResponse sites_pb;
  json sites = json::array();
  for (const auto& [id, sp] : sites_) {
    const SiteRuntime& s = *sp;
    v1::SiteStatus* st = sites_pb.add_sites();
    st->set_site_id(id);
    st->set_name(s.cfg.name);
    st->set_grid(s.cfg.grid);
    st->mutable_location()->set_lat(s.cfg.location.lat);
    st->mutable_location()->set_lon(s.cfg.location.lon);
    st->set_tier(api::ToProtoTier(s.cfg.tier));
    st->set_state(ToProto(s.state));
    for (const auto& f : s.cfg.feeds) st->add_feeds(f);
    json j = {{"id", id},
              {"name", s.cfg.name},
              {"grid", s.cfg.grid},
              {"lat", s.cfg.location.lat},
              {"lon", s.cfg.location.lon},
              {"tier", core::TierName(s.cfg.tier)},
              {"state", core::PowerStateName(s.state)},
              {"feeds", s.cfg.feeds},
              {"runtime", nullptr},
              {"mains_fail_unix_ms", s.mains_fail_at ? Ms(*s.mains_fail_at) : 0},
              {"task_id", nullptr},
              {"override", nullptr},
              {"alert", s.contradiction.empty() ? json(nullptr) : json(s.contradiction)}};
    if (s.band && s.mains_fail_at) {
      v1::RuntimeBand* b = st->mutable_runtime();
      b->set_p10_min(s.band->p10_min);
      b->set_p50_min(s.band->p50_min);
      b->set_p90_min(s.band->p90_min);
      b->set_at_unix_ms(Ms(s.band_at));
      j["runtime"] = {{"p10", s.band->p10_min},
                      {"p50", s.band->p50_min},
                      {"p90", s.band->p90_min},
                      {"at_unix_ms", Ms(s.band_at)},
                      {"basis", s.band->basis}};
      if (s.estimator) j["telemetry"] = model::TelemetryFlagsText(s.estimator->flags());
    }
    j["battery_health"] = {
        {"soh", s.health.soh}, {"sigma", s.health.sigma}, {"outages_learned", s.health.outages}};
    if (s.mains_fail_at) st->set_mains_fail_unix_ms(Ms(*s.mains_fail_at));
    if (s.has_reading) {
      const auto& r = s.last;
      auto val = [](const modbus::PointValue& p) -> json {
        return p.quality == modbus::Quality::kGood ? json(p.value) : json(nullptr);
      };
      st->set_battery_v(r.battery_voltage_v.value);
      st->set_battery_a(r.battery_current_a.value);
      st->set_soc_pct(r.soc_pct.quality == modbus::Quality::kGood ? r.soc_pct.value : -1);
      st->set_last_sample_unix_ms(Ms(r.at));
      j["battery_v"] = val(r.battery_voltage_v);
      j["battery_a"] = val(r.battery_current_a);
      j["soc_pct"] = val(r.soc_pct);
      j["remaining_ah"] = val(r.remaining_ah);
      j["temp_c"] = val(r.battery_temp_c);
      j["ac_v"] = val(r.ac_voltage_v);
      j["last_sample_unix_ms"] = Ms(r.at);
      if (!r.problems.empty()) j["problems"] = r.problems;  // implausible values, absent above
      if (r.absent_points) j["absent_points"] = *r.absent_points;  // the device lacks them
    }
    if (s.identity) j["device"] = *s.identity;
    auto t = task_by_site.find(id);
    if (t != task_by_site.end()) {
      st->set_task_id(t->second.id);
      j["task_id"] = t->second.id;
    }
    std::string ov;
    if (auto p = pins_.find(id); p != pins_.end()) ov = "pinned to " + p->second;
    if (auto v = protected_vip_until_.find(id); v != protected_vip_until_.end() && v->second > now)
      ov += (ov.empty() ? "" : "; ") + std::string("VIP until ") + FormatTime(v->second);
    if (auto h = held_.find(id); h != held_.end() && h->second)
      ov += (ov.empty() ? "" : "; ") + std::string("held");
    if (!ov.empty()) j["override"] = ov;
    sites.push_back(std::move(j));
  }

  v1::QueueSnapshot q;
  q.set_version(version_);
  q.set_at_unix_ms(Ms(now));
  json queue = json::array();
  // Plan order (crew, route position) first; tasks whose generator runs last.
  std::sort(open.begin(), open.end(), [](const tasks::Task& a, const tasks::Task& b) {
    bool ra = a.status == tasks::TaskStatus::kGeneratorRunning;
    bool rb = b.status == tasks::TaskStatus::kGeneratorRunning;
    if (ra != rb) return rb;
    return a.crew != b.crew ? a.crew < b.crew : a.order < b.order;
  });
  for (const auto& t : open) {
    auto sit = sites_.find(t.site);
    double hookup = t.hookup_min;
    TimePoint running = t.eta + core::FromMinutes(hookup);
    double margin = core::ToMinutes(t.deadline - running);
    v1::QueueEntry* e = q.add_entries();
    v1::Task* pt = e->mutable_task();
    pt->set_task_id(t.id);
    pt->set_site_id(t.site);
    pt->set_site_name(t.site_name);
    pt->mutable_location()->set_lat(t.location.lat);
    pt->mutable_location()->set_lon(t.location.lon);
    pt->set_tier(api::ToProtoTier(t.tier));
    pt->set_crew_id(t.crew);
    pt->set_status(api::ToProtoStatus(t.status));
    pt->set_order(t.order);
    pt->set_eta_unix_ms(Ms(t.eta));
    pt->set_deadline_unix_ms(Ms(t.deadline));
    pt->set_reason(t.reason);
    pt->set_hookup_min(hookup);
    pt->set_updated_unix_ms(Ms(t.updated));
    e->set_margin_min(margin);
    json band = nullptr;
    if (sit != sites_.end() && sit->second->band) {
      const SiteRuntime& s = *sit->second;
      double elapsed = core::ToMinutes(now - s.band_at);
      band = json{{"p10", std::max(0.0, s.band->p10_min - elapsed)},
                  {"p50", std::max(0.0, s.band->p50_min - elapsed)},
                  {"p90", std::max(0.0, s.band->p90_min - elapsed)}};
    }
    queue.push_back({{"task_id", t.id},
                     {"site", t.site},
                     {"site_name", t.site_name},
                     {"tier", core::TierName(t.tier)},
                     {"crew", t.crew},
                     {"status", tasks::TaskStatusName(t.status)},
                     {"order", t.order},
                     {"eta_unix_ms", Ms(t.eta)},
                     {"running_unix_ms", Ms(running)},
                     {"deadline_unix_ms", Ms(t.deadline)},
                     {"margin_min", margin},
                     {"reason", t.reason},
                     {"p10", band.is_null() ? json(nullptr) : band["p10"]},
                     {"p50", band.is_null() ? json(nullptr) : band["p50"]},
                     {"p90", band.is_null() ? json(nullptr) : band["p90"]}});
  }

  json crews = json::array();
  for (const auto& [id, c] : crews_) {
    v1::CrewStatus* cs = q.add_crews();
    cs->set_crew_id(id);
    cs->mutable_location()->set_lat(c->location.lat);
    cs->mutable_location()->set_lon(c->location.lon);
    cs->set_generators_left(GeneratorsLeft(*c));
    cs->set_available(!c->unavailable && !c->unresponsive);
    json task = nullptr;
    for (const auto& t : open)
      if (t.crew == id && t.status != tasks::TaskStatus::kGeneratorRunning) {
        task = t.id;
        break;
      }
    crews.push_back({{"id", id},
                     {"name", c->cfg.name},
                     {"lat", c->location.lat},
                     {"lon", c->location.lon},
                     {"generators_left", GeneratorsLeft(*c)},
                     {"available", !c->unavailable && !c->unresponsive},
                     {"task", task}});
  }
  *q.mutable_sites() = sites_pb.sites();

  json events = json::array();
  for (const auto& e : events_) {
    events.push_back({{"at_unix_ms", Ms(e.at)},
                      {"kind", e.kind},
                      {"site", e.site},
                      {"crew", e.crew},
                      {"task", e.task},
                      {"message", e.message}});
  }
  json plan = nullptr;
  if (last_plan_) {
    plan = {{"planned_at_unix_ms", Ms(last_plan_at_)},
            {"vip_down", last_plan_->objective.vip_down},
            {"weighted_down_min", last_plan_->objective.weighted_down_min},
            {"travel_min", last_plan_->objective.travel_min},
            {"unserved", last_plan_->unserved}};
  }
  json state = {{"version", version_},
                {"now_unix_ms", Ms(now)},
                {"offset_min", config_.utc_offset_min},
                {"scenario", config_.name},
                {"speed", clock_.Speed()},
                {"sites", sites},
                {"crews", crews},
                {"queue", queue},
                {"events", events},
                {"plan", plan}};
  std::string text = state.dump();
  {
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    queue_snapshot_ = std::move(q);
    sites_snapshot_ = std::move(sites_pb);
    state_json_ = text;
  }
  if (grpc_publish_) grpc_publish_();
  if (web_publish_) web_publish_(std::move(text));
}

v1::ListSitesResponse Engine::ListSites() {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return sites_snapshot_;
}

v1::QueueSnapshot Engine::Snapshot() {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return queue_snapshot_;
}

std::string Engine::StateJson() {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return state_json_;
}

bool Engine::Ready() { return started_; }

std::string Engine::MetricsText() {
  std::ostringstream m;
  auto counter = [&m](const char* name, const char* help, auto value) {
    m << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n"
      << name << " " << value << "\n";
  };
  counter("sitepower_polls_total", "Controller polls completed.", counters_.polls);
  counter("sitepower_poll_errors_total", "Controller polls that failed.", counters_.poll_errors);
  m << "# HELP sitepower_polls_by_map_total Polls per register map.\n"
       "# TYPE sitepower_polls_by_map_total counter\n";
  for (const auto& [map, n] : counters_.polls_by_map)
    m << "sitepower_polls_by_map_total{map=\"" << map << "\"} " << n << "\n";
  m << "# HELP sitepower_poll_errors_by_map_total Failed polls per register map.\n"
       "# TYPE sitepower_poll_errors_by_map_total counter\n";
  for (const auto& [map, n] : counters_.polls_by_map)
    m << "sitepower_poll_errors_by_map_total{map=\"" << map << "\"} "
      << (counters_.errors_by_map.count(map) ? counters_.errors_by_map.at(map) : 0) << "\n";
  std::map<std::string, int> by_state;
  for (auto s :
       {core::PowerState::kUnknown, core::PowerState::kOnMains, core::PowerState::kOnBattery,
        core::PowerState::kOnGenerator, core::PowerState::kDown, core::PowerState::kStale})
    by_state[std::string(core::PowerStateName(s))] = 0;
  for (const auto& [id, s] : sites_) ++by_state[std::string(core::PowerStateName(s->state))];
  m << "# HELP sitepower_sites Sites per power state.\n# TYPE sitepower_sites gauge\n";
  for (const auto& [state, n] : by_state)
    m << "sitepower_sites{state=\"" << state << "\"} " << n << "\n";
  std::map<std::string, int> by_task;
  for (auto s :
       {tasks::TaskStatus::kAssigned, tasks::TaskStatus::kAccepted, tasks::TaskStatus::kEnRoute,
        tasks::TaskStatus::kOnSite, tasks::TaskStatus::kGeneratorRunning})
    by_task[std::string(tasks::TaskStatusName(s))] = 0;
  for (const auto& t : ledger_.OpenTasks()) ++by_task[std::string(tasks::TaskStatusName(t.status))];
  m << "# HELP sitepower_tasks Open tasks per status.\n# TYPE sitepower_tasks gauge\n";
  for (const auto& [st, n] : by_task) m << "sitepower_tasks{status=\"" << st << "\"} " << n << "\n";
  counter("sitepower_plans_total", "Plans computed.", counters_.plans);
  counter("sitepower_plan_seconds_total", "Time spent planning.", counters_.total_plan_ms / 1000.0);
  m << "# HELP sitepower_last_plan_seconds Duration of the last plan.\n"
       "# TYPE sitepower_last_plan_seconds gauge\nsitepower_last_plan_seconds "
    << counters_.last_plan_ms / 1000.0 << "\n";
  counter("sitepower_prediction_changes_total", "Runtime predictions that moved by more than 20 %.",
          counters_.prediction_changes);
  counter("sitepower_overrides_total", "Operator overrides applied.", counters_.overrides);
  counter("sitepower_escalations_total", "Tasks escalated for lack of acknowledgement.",
          counters_.escalations);
  counter("sitepower_contradictions_total",
          "Crew reports of a running generator that the telemetry contradicted.",
          counters_.contradictions);
  return m.str();
}

}  // namespace sitepower::app
