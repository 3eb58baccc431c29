#include "app/engine.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <set>

#include "app/engine_state.hpp"
#include "app/log.hpp"
#include "dispatch/reserve.hpp"

namespace sitepower::app {

using core::PowerState;
using core::TimePoint;
using modbus::Quality;
using modbus::SiteEvent;

namespace {
constexpr size_t kMaxLogEvents = 300;

bool Good(const modbus::PointValue& p) { return p.quality == Quality::kGood; }

// A crew's generator is spent once the crew itself reports being on site or
// running; telemetry alone (another crew's generator, or a site generator)
// does not spend this crew's.
bool UsesGenerator(const tasks::TaskEvent& e) {
  return tasks::ReportedByCrew(e) && (e.task.status == tasks::TaskStatus::kOnSite ||
                                      e.task.status == tasks::TaskStatus::kGeneratorRunning);
}

// Rounds to the minute so that a re-plan that moves an ETA by seconds does not
// become an UPDATED event on a technician's phone.
TimePoint RoundToMinute(TimePoint t) { return std::chrono::round<std::chrono::minutes>(t); }
}  // namespace

Engine::Engine(boost::asio::io_context& io, const Config& config, const core::Clock& clock,
               tasks::TaskLedger& ledger, store::Store& store)
    : io_(io),
      config_(config),
      clock_(clock),
      ledger_(ledger),
      store_(store),
      replan_timer_(io),
      burst_timer_(io),
      first_plan_timer_(io),
      planner_(std::make_unique<boost::asio::thread_pool>(1)),
      periodic_timer_(io) {
  for (const auto& s : config_.sites)
    sites_.emplace(s.id, std::make_unique<SiteRuntime>(s, config_.poll));
  for (const auto& c : config_.crews) crews_.emplace(c.id, std::make_unique<CrewRuntime>(c));
}

Engine::~Engine() {
  Stop();
  alive_.reset();  // a plan still on the planner thread is not applied
  planner_->join();
}

void Engine::SetPublishers(std::function<void()> grpc_publish,
                           std::function<void(std::string)> web_publish) {
  grpc_publish_ = std::move(grpc_publish);
  web_publish_ = std::move(web_publish);
}

void Engine::SetFastPollHook(std::function<void(const core::SiteId&, bool)> hook) {
  fast_poll_ = std::move(hook);
}

void Engine::Start() {
  RestoreState();
  // Generators the crews said run (a restart must not take them for mains).
  for (const auto& t : ledger_.OpenTasks())
    if (t.status == tasks::TaskStatus::kGeneratorRunning)
      if (auto site = sites_.find(t.site); site != sites_.end())
        site->second->tracker.SetGeneratorReported(true);
  // Generators already used, from the ledger's history (survives restarts).
  for (auto& [id, crew] : crews_) {
    for (const auto& e : ledger_.EventsAfter(id, 0)) {
      if (UsesGenerator(e)) crew->generators_used.insert(e.task.site);
    }
  }
  ledger_sub_ = ledger_.Subscribe([this](const tasks::TaskEvent& e) {
    boost::asio::post(io_, [this, e]() { OnLedgerEvent(e); });
  });
  ledger_subscribed_ = true;
  started_ = true;
  started_at_ = clock_.Now();
  ArmPeriodic();
  // The first plan waits for the controllers' first answers (a mains
  // failure confirmed meanwhile plans at once): a plan made before any
  // telemetry sees every battery as empty and reshuffles the crews' lists.
  first_plan_timer_.expires_after(
      std::chrono::milliseconds(config_.poll.interval_ms * (config_.poll.mains_fail_confirm + 1)));
  first_plan_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) ScheduleReplan("daemon started");
  });
  PublishViews();
}

void Engine::Stop() {
  if (ledger_subscribed_) {
    ledger_.Unsubscribe(ledger_sub_);
    ledger_subscribed_ = false;
  }
  replan_timer_.cancel();
  burst_timer_.cancel();
  first_plan_timer_.cancel();
  periodic_timer_.cancel();
  started_ = false;
}

void Engine::OnReading(const core::SiteId& site, const modbus::Reading& r) {
  auto it = sites_.find(site);
  if (it == sites_.end()) return;
  SiteRuntime& s = *it->second;
  ++counters_.polls;
  ++counters_.polls_by_map[s.cfg.controller.map];
  if (!r.poll_ok) {
    ++counters_.poll_errors;
    ++counters_.errors_by_map[s.cfg.controller.map];
  }
  // The poller hands every reading of a device the same identity pointer:
  // the strings are compared only when it changes.
  if (r.identity && r.identity != s.identity && (!s.identity || *s.identity != *r.identity)) {
    s.identity = r.identity;
    Log("device", site, "", "", "controller: " + *r.identity);
    MarkViewsDirty();
  }
  if (r.poll_ok) {
    // Values the map's bounds rejected: logged when they change (against the
    // last good poll's), not every poll.
    if (r.problems != s.last.problems) {
      std::string text;
      for (const std::string& p : r.problems) text += (text.empty() ? "" : "; ") + p;
      Log("telemetry", site, "", "",
          text.empty() ? "values plausible again" : "implausible values ignored: " + text);
    }
    // Points the device does not have (it refused their block): logged when
    // the set changes; the poller hands the same pointer until then.
    if (r.absent_points != s.last.absent_points &&
        (!r.absent_points || !s.last.absent_points || *r.absent_points != *s.last.absent_points)) {
      Log("device", site, "", "",
          r.absent_points ? "points absent (the device refused them): " + *r.absent_points
                          : "every point of the map answers");
      MarkViewsDirty();
    }
    s.last = r;
    s.has_reading = true;
    if (Good(r.battery_voltage_v) && Good(r.battery_current_a) && r.battery_current_a.value > 0)
      s.measured_load_w = r.battery_voltage_v.value * r.battery_current_a.value;
  }
  for (const SiteEvent& e : s.tracker.Feed(r)) OnSiteEvent(s, e);
  PowerState before = s.state;
  s.state = s.tracker.state();
  if (s.mains_fail_at && r.poll_ok && !s.generator_running) UpdatePrediction(s, r.at, true);
  if (before != s.state) MarkViewsDirty();
}

void Engine::OnSiteEvent(SiteRuntime& s, const SiteEvent& e) {
  const std::string& id = s.cfg.id;
  switch (e.kind) {
    case SiteEvent::Kind::kMainsFailed:
      if (!s.mains_fail_at) s.mains_fail_at = e.at;
      Log("mains_failed", id, "", "", "mains failure confirmed at " + FormatTime(e.at));
      if (fast_poll_) fast_poll_(id, true);
      UpdatePrediction(s, e.at, false);
      PersistSite(s);
      ScheduleReplan("mains failed at " + id, /*burst=*/true);
      break;
    case SiteEvent::Kind::kMainsRestored:
      LearnFromOutage(s);
      s.mains_fail_at.reset();
      s.band.reset();
      s.generator_running = false;
      Log("mains_restored", id, "", "", "mains back at " + FormatTime(e.at));
      if (fast_poll_) fast_poll_(id, false);
      ledger_.OnMainsRestored(id);
      PersistSite(s);
      ScheduleReplan("mains restored at " + id);
      break;
    case SiteEvent::Kind::kGeneratorStarted:
      s.generator_running = true;
      Log("generator", id, "", "", "controller shows a generator carrying the load");
      ledger_.OnGeneratorRunning(id);
      PersistSite(s);
      ScheduleReplan("generator running at " + id);
      break;
    case SiteEvent::Kind::kGeneratorStopped:
      s.generator_running = false;
      Log("generator", id, "", "", "generator stopped");
      PersistSite(s);
      ScheduleReplan("generator stopped at " + id);
      break;
    case SiteEvent::Kind::kStale:
      Log("stale", id, "", "", "controller silent: values are stale (" + e.detail + ")");
      break;
    case SiteEvent::Kind::kFresh:
      Log("fresh", id, "", "", "controller answers again");
      break;
    case SiteEvent::Kind::kLvdOpened:
      Log("down", id, "", "", "low-voltage disconnect open: site off air");
      ScheduleReplan("site down at " + id);
      break;
    case SiteEvent::Kind::kLvdClosed:
      Log("up", id, "", "", "low-voltage disconnect closed");
      break;
  }
  MarkViewsDirty();
}

void Engine::UpdatePrediction(SiteRuntime& s, TimePoint now, bool new_reading) {
  if (!s.cfg.battery || !s.mains_fail_at) return;
  const modbus::Reading& r = s.last;
  if (!s.estimator) {
    // The outage's estimator starts from the site's learned health. After a
    // restart mid-outage it starts from the time already spent on battery
    // (the controller's SoC, when it has one, corrects that at once).
    core::BatterySpec spec = *s.cfg.battery;
    spec.soh = s.health.soh;
    model::Confidence conf;
    conf.soh_sigma = s.health.sigma / std::max(0.05, s.health.soh);
    conf.load_sigma = 0.15;  // a configured load is an estimate
    const model::Load prior{s.cfg.load_w, 0};
    double since = core::ToMinutes(now - *s.mains_fail_at);
    if (since > 1) {
      double total = model::PredictRuntime(spec, prior).p50_min;
      spec.soc = std::clamp(spec.soc * (1.0 - since / std::max(1.0, total)), 0.0, 1.0);
    }
    s.estimator.emplace(spec, prior, conf);
  }
  if (new_reading) {
    constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
    auto value = [](const modbus::PointValue& p, double scale = 1.0) {
      return Good(p) ? p.value * scale : kNaN;
    };
    model::Sample sample;
    sample.t_s = static_cast<double>(now.time_since_epoch().count()) / 1000.0;
    sample.voltage_v = value(r.battery_voltage_v);
    sample.current_a = value(r.battery_current_a);
    sample.temp_c = value(r.battery_temp_c);
    sample.soc = value(r.soc_pct, 0.01);
    uint32_t before = s.estimator->flags();
    s.estimator->Add(sample);
    uint32_t after = s.estimator->flags();
    if (after != before)
      Log("telemetry", s.cfg.id, "", "",
          after == model::kTelemetryOk
              ? "battery telemetry good again"
              : "battery telemetry flagged (" + model::TelemetryFlagsText(after) +
                    "): prediction falls back to the model with a wider band");
  }
  model::RuntimeBand band = s.estimator->Predict();
  TimePoint at = now;
  const core::BatterySpec& spec = *s.cfg.battery;
  double end_v = spec.end_v_per_cell * spec.cells;
  if (s.has_reading && Good(r.battery_voltage_v) && r.battery_voltage_v.value <= end_v)
    band = model::RuntimeBand{0, 0, 0, "at end voltage"};
  // Off air (the disconnect is open): the battery's resting voltage may look
  // healthy again, but the site needs a generator now.
  if (s.state == PowerState::kDown)
    band = model::RuntimeBand{0, 0, 0, "low-voltage disconnect open"};
  if (s.band) {
    double old_p50 = core::ToMinutes(s.band_at - *s.mains_fail_at) + s.band->p50_min;
    double new_p50 = core::ToMinutes(at - *s.mains_fail_at) + band.p50_min;
    if (old_p50 > 0 && std::abs(new_p50 - old_p50) / old_p50 > 0.2) {
      ++counters_.prediction_changes;
      Log("prediction", s.cfg.id, "", "",
          "runtime P50 changed " + std::to_string(static_cast<int>(old_p50)) + " -> " +
              std::to_string(static_cast<int>(new_p50)) + " min since outage: load " +
              std::to_string(static_cast<int>(s.estimator->load_w())) + " W, spent " +
              std::to_string(static_cast<int>(100 * s.estimator->used())) + " %, capacity x" +
              std::to_string(s.estimator->capacity_scale()).substr(0, 4) + ", basis " + band.basis);
      ScheduleReplan("prediction changed at " + s.cfg.id);
    }
  }
  s.band = band;
  s.band_at = at;
}

// After an outage: what the discharge showed about the battery's capacity
// is learned into the site's health, persisted, and used by the next outage.
void Engine::LearnFromOutage(SiteRuntime& s) {
  if (!s.estimator) return;
  model::BatteryHealth h = model::LearnFromOutage(s.health, *s.estimator);
  if (h.outages != s.health.outages)
    Log("learned", s.cfg.id, "", "",
        "battery health " + std::to_string(s.health.soh).substr(0, 4) + " -> " +
            std::to_string(h.soh).substr(0, 4) + " after an outage that spent " +
            std::to_string(static_cast<int>(100 * s.estimator->used())) + " %");
  s.health = h;
  s.estimator.reset();
  store::Commit c;
  c.kv.push_back({"health/" + s.cfg.id, model::HealthToJson(h)});
  if (auto st = store_.Apply(c); !st.ok())
    LogLine(LogLevel::kError, "store", {{"site", s.cfg.id}, {"error", st.message()}});
}

void Engine::OnCrewLocation(const core::CrewId& crew, core::LatLon where, TimePoint at) {
  boost::asio::post(io_, [this, crew, where, at]() {
    auto it = crews_.find(crew);
    if (it == crews_.end()) return;
    it->second->location = where;
    it->second->location_at = at;
    if (it->second->unresponsive) {
      it->second->unresponsive = false;
      Log("crew", "", crew, "", "crew reachable again");
      ScheduleReplan("crew " + crew + " reachable");
    }
    MarkViewsDirty();
  });
}

void Engine::OnLedgerEvent(const tasks::TaskEvent& e) {
  if (!started_) return;
  const tasks::Task& t = e.task;
  Log("task", t.site, e.crew, t.id, e.message);
  if (e.kind == tasks::EventKind::kStatus) {
    // The crew's word on a generator the controller may not be able to show.
    if (auto site = sites_.find(t.site); site != sites_.end()) {
      if (t.status == tasks::TaskStatus::kGeneratorRunning)
        site->second->tracker.SetGeneratorReported(true);
      else if (IsTerminal(t.status))
        site->second->tracker.SetGeneratorReported(false);
    }
    auto it = crews_.find(t.crew);
    if (it != crews_.end()) {
      if (UsesGenerator(e)) it->second->generators_used.insert(t.site);
      if (it->second->unresponsive) {
        it->second->unresponsive = false;
        Log("crew", "", t.crew, "", "crew acknowledged again");
      }
    }
    ScheduleReplan("task " + t.id + " status changed");
  }
  MarkViewsDirty();
}

void Engine::ScheduleReplan(const std::string& why, bool burst) {
  if (!started_) return;
  if (replan_why_.empty())
    replan_why_ = why;
  else if (replan_why_.size() < 200)
    replan_why_ += "; " + why;
  // One plan per burst of mains failures: the first failure is planned at
  // once (its task reaches a crew within milliseconds of the poll that
  // confirmed it), the rest of the burst joins one plan a whole on-mains poll
  // round later, so a line cut that takes 18 sites is planned with all 18
  // known instead of once per site. Other events during the burst join it.
  if (burst) {
    if (burst_open_) return;
    burst_open_ = true;
    Replan();
    burst_timer_.expires_after(std::chrono::milliseconds(config_.poll.interval_ms * 6 / 5));
    burst_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      burst_open_ = false;
      Replan();
    });
    return;
  }
  if (burst_open_ || replan_pending_) return;
  replan_pending_ = true;
  // Other events (crew status, predictions, restores) are coalesced over one
  // scenario minute (30 ms to 2 s of wall time).
  auto window = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(60.0 / clock_.Speed()));
  window = std::clamp(window, std::chrono::milliseconds(30), std::chrono::milliseconds(2000));
  replan_timer_.expires_after(window);
  replan_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    replan_pending_ = false;
    Replan();
  });
}

int Engine::GeneratorsLeft(const CrewRuntime& c) const {
  return std::max(0, c.cfg.generators - static_cast<int>(c.generators_used.size()));
}

dispatch::PlanInput Engine::BuildPlanInput(TimePoint now) const {
  dispatch::PlanInput in;
  in.now = now;
  in.travel = config_.travel;
  in.weights = config_.weights;
  in.horizon_end = now + std::chrono::hours(24);
  in.offset_min = config_.utc_offset_min;
  std::set<core::SiteId> running_tasks;
  std::map<core::CrewId, std::vector<tasks::Task>> open_by_crew;
  std::map<core::SiteId, core::CrewId> crew_of_site;
  for (const auto& t : ledger_.OpenTasks()) {
    // A generator being hooked up is as good as running for planning: its
    // crew's generator is already counted as spent (see UsesGenerator).
    if (t.status == tasks::TaskStatus::kGeneratorRunning || t.status == tasks::TaskStatus::kOnSite)
      running_tasks.insert(t.site);
    open_by_crew[t.crew].push_back(t);
    crew_of_site[t.site] = t.crew;
  }
  std::set<core::SiteId> included;
  for (const auto& [id, s] : sites_) {
    if (s->mains_fail_at) included.insert(id);
  }
  for (const auto& [id, sp] : sites_) {
    const SiteRuntime& s = *sp;
    if (!s.mains_fail_at) continue;
    dispatch::SiteNeed n;
    n.id = id;
    n.location = s.cfg.location;
    n.tier = s.cfg.tier;
    auto vip = protected_vip_until_.find(id);
    if (vip != protected_vip_until_.end() && vip->second > now) n.tier = core::Tier::kVip;
    for (const auto& f : s.cfg.feeds)
      if (included.count(f)) n.feeds.push_back(f);
    n.hookup_min = config_.HookupMin(s.cfg);
    n.mains_fail_at = *s.mains_fail_at;
    if (s.band) {
      n.deadline_p10 = s.band_at + core::FromMinutes(std::min(s.band->p10_min, 1e7));
      n.deadline_p50 = s.band_at + core::FromMinutes(std::min(s.band->p50_min, 1e7));
      n.deadline_p90 = s.band_at + core::FromMinutes(std::min(s.band->p90_min, 1e7));
    } else {
      // No battery model and no telemetry: treat as urgent rather than safe.
      n.deadline_p10 = n.deadline_p50 = n.deadline_p90 = now;
    }
    n.served =
        s.generator_running || s.state == PowerState::kOnGenerator || running_tasks.count(id) > 0;
    if (auto c = crew_of_site.find(id); c != crew_of_site.end()) n.current_crew = c->second;
    n.fixed_generator = s.cfg.fixed_generator;
    in.sites.push_back(std::move(n));
    auto h = held_.find(id);
    if (h != held_.end() && h->second) in.held.push_back(id);
  }
  for (const auto& [id, c] : crews_) {
    if (c->unavailable || c->unresponsive) continue;
    dispatch::CrewState cs;
    cs.id = id;
    cs.location = c->location;
    cs.generators_left = GeneratorsLeft(*c);
    cs.available_from = now;
    cs.speed_kmh = c->cfg.speed_kmh;
    auto open = open_by_crew.find(id);
    if (open != open_by_crew.end()) {
      auto tasks = open->second;
      std::sort(tasks.begin(), tasks.end(),
                [](const tasks::Task& a, const tasks::Task& b) { return a.order < b.order; });
      for (const auto& t : tasks) {
        // A crew on site is planned from there, free once its hook-up is done.
        if (t.status == tasks::TaskStatus::kOnSite) {
          cs.location = t.location;
          cs.available_from = std::max(now, t.updated + core::FromMinutes(t.hookup_min));
        }
        // A crew on its way keeps its task; an accepted task that has not
        // started may still move, visibly (REASSIGNED), if the plan says so.
        // An operator's hold overrides that: the crew is called back (told).
        auto held = held_.find(t.site);
        bool on_hold = held != held_.end() && held->second;
        if (t.status == tasks::TaskStatus::kEnRoute && !on_hold) cs.committed.push_back(t.site);
      }
    }
    in.crews.push_back(std::move(cs));
  }
  for (const auto& [site, crew] : pins_) in.pins.push_back({site, crew});
  // Generators scarcer than the sites that will need them: hold some for the
  // VIP and key sites that may lose mains next (the optimizer only; the seed
  // rule is the grid managers' rule as they apply it).
  if (config_.planner.reserve && config_.planner.policy == PlannerPolicy::kOptimize) {
    std::vector<dispatch::SiteOnMains> on_mains;
    for (const auto& [id, s] : sites_)
      if (!s->mains_fail_at && !s->cfg.fixed_generator && s->cfg.tier != core::Tier::kStandard)
        on_mains.push_back({id, s->cfg.location, s->cfg.tier});
    dispatch::ReserveGenerators(in, on_mains,
                                static_cast<double>(included.size()) /
                                    static_cast<double>(std::max<size_t>(1, sites_.size())));
  }
  // Warm start: the search begins from the last plan (the planner drops what
  // no longer applies), so a re-plan after one event is quick and calm.
  if (last_plan_)
    for (const auto& r : last_plan_->routes)
      for (const auto& stop : r.stops) in.previous_routes[r.crew].push_back(stop.site);
  return in;
}

void Engine::Replan() {
  if (!started_) return;
  if (planning_) {
    again_ = true;
    return;
  }
  planning_ = true;
  // In a drill, scenario time stands still while the plan is made (released
  // when it is applied): a drill at 600x decides what the day at 1x would.
  clock_.Hold();
  std::string why = std::move(replan_why_);
  replan_why_.clear();
  TimePoint now = clock_.Now();
  auto t0 = std::chrono::steady_clock::now();
  auto input = std::make_shared<dispatch::PlanInput>(BuildPlanInput(now));
  dispatch::Options opts;
  opts.budget_ms = config_.planner.budget_ms;
  opts.keep_margin_min = config_.planner.keep_margin_min;
  opts.change_margin_min = config_.planner.change_margin_min;
  if (config_.planner.policy == PlannerPolicy::kSeedRule)
    opts.algorithm = dispatch::Algorithm::kSeedRule;
  // The planner is a pure function of its input: it runs on its own thread
  // while the poller, the API and the dashboard go on here.
  boost::asio::post(*planner_, [this, alive = std::weak_ptr<int>(alive_), input, opts, now, t0,
                                why = std::move(why)]() mutable {
    auto plan = std::make_shared<dispatch::Plan>(dispatch::MakePlan(*input, opts));
    boost::asio::post(io_, [this, alive, sites = input->sites.size(), plan, now, t0,
                            why = std::move(why)]() mutable {
      if (alive.expired()) return;
      ApplyPlan(std::move(*plan), sites, std::move(why), now, t0);
    });
  });
}

void Engine::ApplyPlan(dispatch::Plan plan, size_t sites_planned, std::string why, TimePoint now,
                       std::chrono::steady_clock::time_point t0) {
  planning_ = false;
  clock_.Release();
  if (!started_) return;
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ++counters_.plans;
  counters_.last_plan_ms = ms;
  counters_.total_plan_ms += ms;

  std::vector<tasks::Assignment> assignments;
  planned_stop_.clear();
  for (const auto& route : plan.routes) {
    int order = 0;
    for (const auto& stop : route.stops) {
      auto it = sites_.find(stop.site);
      if (it == sites_.end()) continue;
      const SiteRuntime& s = *it->second;
      if (!s.mains_fail_at) continue;  // mains came back while the plan was made
      planned_stop_[stop.site] = stop;
      tasks::Assignment a;
      a.site = stop.site;
      a.site_name = s.cfg.name;
      a.location = s.cfg.location;
      a.tier = s.cfg.tier;
      a.crew = route.crew;
      a.order = ++order;
      a.eta = RoundToMinute(stop.eta);
      a.deadline = RoundToMinute(stop.deadline);
      if (s.band) {
        double elapsed = core::ToMinutes(now - s.band_at);
        a.p10_min = std::max(0.0, s.band->p10_min - elapsed);
        a.p50_min = std::max(0.0, s.band->p50_min - elapsed);
        a.p90_min = std::max(0.0, s.band->p90_min - elapsed);
      }
      a.hookup_min = config_.HookupMin(s.cfg);
      a.reason = stop.reason;
      assignments.push_back(std::move(a));
    }
  }
  // Tasks whose generator already runs are done as far as planning goes: keep
  // them as they are so the ledger does not cancel them.
  for (const auto& t : ledger_.OpenTasks()) {
    if (t.status != tasks::TaskStatus::kGeneratorRunning) continue;
    tasks::Assignment a;
    a.site = t.site;
    a.site_name = t.site_name;
    a.location = t.location;
    a.tier = t.tier;
    a.crew = t.crew;
    a.order = t.order;
    a.eta = t.eta;
    a.deadline = t.deadline;
    a.p10_min = t.p10_min;
    a.p50_min = t.p50_min;
    a.p90_min = t.p90_min;
    a.hookup_min = t.hookup_min;
    a.reason = t.reason;
    assignments.push_back(std::move(a));
  }
  auto events = ledger_.ApplyPlan(assignments, why);
  last_plan_ = std::move(plan);
  last_plan_at_ = now;
  LogLine(LogLevel::kInfo, "plan",
          {{"why", why},
           {"sites", std::to_string(sites_planned)},
           {"tasks", std::to_string(assignments.size())},
           {"changes", std::to_string(events.size())},
           {"vip_down", std::to_string(last_plan_->objective.vip_down)},
           {"weighted_down_min", std::to_string(last_plan_->objective.weighted_down_min)},
           {"ms", std::to_string(ms)}});
  if (!events.empty())
    Log("plan", "", "", "",
        "re-planned (" + why + "): " + std::to_string(events.size()) + " task changes, " +
            std::to_string(last_plan_->objective.vip_down) + " VIP predicted down");
  MarkViewsDirty();
  // What was asked for while this plan was made.
  if (again_) {
    again_ = false;
    Replan();
  }
}

void Engine::CheckEscalations() {
  TimePoint now = clock_.Now();
  // Tasks pushed before a restart get a whole acknowledgement window from
  // it: the crews' phones need time to reconnect and send what they queued.
  const auto timeout = core::FromMinutes(config_.planner.ack_timeout_min);
  if (now - started_at_ < timeout) return;
  const auto cutoff = now - timeout;
  std::set<core::CrewId> escalated;
  for (const auto& t : ledger_.UnacknowledgedSince(cutoff)) {
    auto it = crews_.find(t.crew);
    if (it == crews_.end() || it->second->unresponsive) continue;
    it->second->unresponsive = true;
    escalated.insert(t.crew);
    ++counters_.escalations;
    Log("escalation", t.site, t.crew, t.id,
        "not acknowledged within " +
            std::to_string(static_cast<int>(config_.planner.ack_timeout_min)) + " min: crew " +
            t.crew + " set aside, its tasks re-planned; NOC please call the crew");
  }
  if (!escalated.empty()) ScheduleReplan("escalation");
}

// The closed loop's other half: a crew says the generator runs, but the
// controller still shows the battery discharging. After the configured time
// the NOC is told (log, dashboard, metrics); it clears by itself when the
// telemetry agrees.
void Engine::CheckContradictions() {
  TimePoint now = clock_.Now();
  auto limit = core::FromMinutes(config_.planner.contradiction_min);
  std::set<core::SiteId> running;
  for (const auto& t : ledger_.OpenTasks()) {
    if (t.status != tasks::TaskStatus::kGeneratorRunning) continue;
    auto it = sites_.find(t.site);
    if (it == sites_.end()) continue;
    SiteRuntime& s = *it->second;
    running.insert(t.site);
    const modbus::PointValue& amps = s.last.battery_current_a;
    bool discharging = s.has_reading && s.state == core::PowerState::kOnBattery &&
                       !s.generator_running && Good(amps) && amps.value > 0;
    if (!discharging) {
      if (!s.contradiction.empty()) {
        Log("contradiction_cleared", t.site, t.crew, t.id,
            "the controller now agrees: the generator carries the load");
        s.contradiction.clear();
        MarkViewsDirty();
      }
      continue;
    }
    if (!s.contradiction.empty() || now - t.updated < limit) continue;
    ++counters_.contradictions;
    s.contradiction = "crew " + t.crew + " reported the generator running at " +
                      FormatTime(t.updated) + ", but the battery still discharges (" +
                      std::to_string(static_cast<int>(amps.value)) + " A)";
    Log("contradiction", t.site, t.crew, t.id, s.contradiction + ": NOC please check the site");
    MarkViewsDirty();
  }
  for (auto& [id, s] : sites_)
    if (!running.count(id)) s->contradiction.clear();
}

void Engine::ArmPeriodic() {
  // One tick per scenario minute (wall time: a minute on the real clock, 1 s at
  // 60x), clamped so drills stay smooth and real time stays cheap.
  auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(60.0 / clock_.Speed()));
  wall = std::clamp(wall, std::chrono::milliseconds(200), std::chrono::milliseconds(30000));
  periodic_timer_.expires_after(wall);
  periodic_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || !started_) return;
    CheckEscalations();
    CheckContradictions();
    TimePoint now = clock_.Now();
    if (now - last_plan_at_ >= std::chrono::minutes(5)) ScheduleReplan("periodic re-plan");
    MarkViewsDirty();
    ArmPeriodic();
  });
}

void Engine::Log(std::string kind, std::string site, std::string crew, std::string task,
                 std::string message) {
  TimePoint now = clock_.Now();
  LogLine(LogLevel::kInfo, kind,
          {{"site", site}, {"crew", crew}, {"task", task}, {"msg", message}});
  events_.push_back({now, std::move(kind), std::move(site), std::move(crew), std::move(task),
                     std::move(message)});
  while (events_.size() > kMaxLogEvents) events_.pop_front();
}

std::string Engine::FormatTime(TimePoint t) const {
  return core::FormatHhMm(t, config_.utc_offset_min);
}

void Engine::MarkViewsDirty() {
  if (views_dirty_) return;
  views_dirty_ = true;
  boost::asio::post(io_, [this]() {
    views_dirty_ = false;
    PublishViews();
  });
}

}  // namespace sitepower::app
