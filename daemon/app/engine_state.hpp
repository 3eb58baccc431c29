// The engine's per-site and per-crew runtime state (internal to app/).
#pragma once

#include <memory>
#include <optional>
#include <set>

#include "app/engine.hpp"
#include "model/estimator.hpp"
#include "model/learning.hpp"

namespace sitepower::app {

struct Engine::SiteRuntime {
  SiteRuntime(const SiteConfig& c, const PollConfig& p)
      : cfg(c), tracker(p.mains_fail_confirm, p.stale_after_missed) {
    if (c.battery) health = model::PriorHealth(*c.battery);
  }
  const SiteConfig& cfg;
  modbus::SiteStateTracker tracker;
  modbus::Reading last;
  bool has_reading = false;
  std::shared_ptr<const std::string> identity;  // what the controller says it is
  core::PowerState state = core::PowerState::kUnknown;
  std::optional<core::TimePoint> mains_fail_at;
  std::optional<model::RuntimeBand> band;  // minutes from band_at
  core::TimePoint band_at{};
  double measured_load_w = 0;
  std::optional<model::DischargeEstimator> estimator;  // during an outage
  model::BatteryHealth health;                         // learned across outages
  std::string contradiction;  // set while a crew report and the telemetry disagree
  bool generator_running = false;
};

struct Engine::CrewRuntime {
  explicit CrewRuntime(const CrewConfig& c) : cfg(c), location(c.location) {}
  const CrewConfig& cfg;
  core::LatLon location;
  core::TimePoint location_at{};
  bool unresponsive = false;  // escalated: did not acknowledge in time
  bool unavailable = false;   // operator override
  std::set<core::SiteId> generators_used;
};

}  // namespace sitepower::app
