#include "modbus/site_state.hpp"

namespace sitepower::modbus {

namespace {
constexpr double kDischargeThresholdA = 1.0;  // above this the battery carries the load
}

SiteStateTracker::SiteStateTracker(int mains_fail_confirm, int stale_after_missed)
    : confirm_(mains_fail_confirm < 1 ? 1 : mains_fail_confirm),
      stale_after_(stale_after_missed < 1 ? 1 : stale_after_missed) {}

std::vector<SiteEvent> SiteStateTracker::Feed(const Reading& r) {
  std::vector<SiteEvent> ev;
  if (!r.poll_ok) {
    ++missed_;
    if (!stale_ && missed_ >= stale_after_) {
      stale_ = true;
      ev.push_back({SiteEvent::Kind::kStale, r.at,
                    std::to_string(missed_) + " polls missed; last error: " + r.error});
    }
    return ev;
  }
  missed_ = 0;
  if (stale_) {
    stale_ = false;
    ev.push_back({SiteEvent::Kind::kFresh, r.at, ""});
  }
  have_data_ = true;
  // Mains: the controller's AC-input point (or the map's AC-voltage rule),
  // or, where the map's rule says so, the battery current (discharging means
  // the rectifiers are not carrying the load). Neither: mains is unknown.
  const double above_a = r.mains_lost_above_discharge_a.value_or(kDischargeThresholdA);
  std::optional<bool> mains_ok;
  if (r.battery_current_a.quality == Quality::kGood)
    discharging_ = r.battery_current_a.value > above_a;
  mains_from_current_ = false;
  if (r.mains_ok.quality == Quality::kGood) {
    mains_ok = r.mains_ok.value >= 0.5;
  } else if (r.mains_lost_above_discharge_a && r.battery_current_a.quality == Quality::kGood) {
    mains_from_current_ = true;
    // During an outage with a generator on site, charging cannot tell mains
    // from the generator: mains stay lost until the generator leaves.
    const bool generator_there = mains_failed_ && (generator_ || generator_reported_);
    // After a failure only a charging battery shows mains back: a battery
    // that stopped discharging because its low-voltage disconnect opened (or
    // reads no current) is a site off air, not mains returning. Before one,
    // an idle battery on float is a site on mains.
    const bool charging = r.battery_current_a.value <= -above_a;
    if (discharging_)
      mains_ok = false;
    else if (!mains_failed_ || (charging && !generator_there))
      mains_ok = true;
  }
  // Known: this reading told (or, with a generator there, kept) the mains state.
  mains_known_ = mains_ok.has_value() || mains_from_current_;
  if (mains_ok) {
    bool says_failed = !*mains_ok;
    if (says_failed != mains_failed_) {
      if (disagree_ == 0) first_disagree_ = r.at;
      if (++disagree_ >= confirm_) {
        mains_failed_ = says_failed;
        disagree_ = 0;
        ev.push_back({says_failed ? SiteEvent::Kind::kMainsFailed : SiteEvent::Kind::kMainsRestored,
                      first_disagree_, ""});
      }
    } else {
      disagree_ = 0;
    }
  }
  if (r.generator_running.quality == Quality::kGood) {
    bool g = r.generator_running.value >= 0.5;
    if (g != generator_) {
      generator_ = g;
      ev.push_back(
          {g ? SiteEvent::Kind::kGeneratorStarted : SiteEvent::Kind::kGeneratorStopped, r.at, ""});
    }
  }
  if (r.lvd_open.quality == Quality::kGood) {
    bool o = r.lvd_open.value >= 0.5;
    if (o != lvd_open_) {
      lvd_open_ = o;
      ev.push_back({o ? SiteEvent::Kind::kLvdOpened : SiteEvent::Kind::kLvdClosed, r.at, ""});
    }
  }
  return ev;
}

core::PowerState SiteStateTracker::state() const {
  if (stale_) return core::PowerState::kStale;
  if (!have_data_) return core::PowerState::kUnknown;
  if (lvd_open_ && !generator_) return core::PowerState::kDown;
  if (generator_) return core::PowerState::kOnGenerator;
  // Shown by the crew and, without a mains point, by the battery no longer discharging.
  if (mains_failed_ && generator_reported_ && mains_from_current_ && !discharging_)
    return core::PowerState::kOnGenerator;
  if (mains_failed_) return core::PowerState::kOnBattery;
  // Nothing in the last reading shows mains: unknown, never taken as healthy.
  if (!mains_known_) return core::PowerState::kUnknown;
  return core::PowerState::kOnMains;
}

}  // namespace sitepower::modbus
