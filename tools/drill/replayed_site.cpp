#include "drill/replayed_site.hpp"

#include <algorithm>

namespace sitepower::drill {
namespace {
constexpr double kFloatVPerCell = 2.23;  // on mains and full, as the plain drill shows
constexpr double kStepS = 10;            // battery integration step, as the plain drill
}  // namespace

ReplayedSite::ReplayedSite(SiteTrack track, const scenario::Site& site)
    : track_(std::move(track)), site_(site) {
  if (site_.battery) battery_.emplace(*site_.battery, site_.load_w);
  if (site_.battery) {
    last_.voltage_v = kFloatVPerCell * site_.battery->cells;
    last_.temp_c = site_.battery->temp_c;
    last_.capacity_ah = site_.battery->capacity_ah * site_.battery->strings;
    last_.lvd_v = site_.battery->end_v_per_cell * site_.battery->cells;
  }
}

void ReplayedSite::StartSimulation(core::TimePoint at) {
  simulated_from_ = at;
  if (at < track_.first()) {
    basis_ = "the scenario's battery (before the recording)";
    return;
  }
  if (!site_.battery) {
    basis_ = "the scenario's runtime_min";
    return;
  }
  RecordedBattery b = RecordedBatteryAt(track_, *site_.battery, at);
  battery_.emplace(
      sim::BatterySim::Resume(*site_.battery, site_.load_w, b.drawn_ah, b.empty || empty_at_));
  basis_ = (b.empty || empty_at_) ? "empty (the recording reached end voltage)" : b.basis;
}

sim::ControllerState ReplayedSite::FromSample(const recording::Sample& s) const {
  sim::ControllerState st = last_;  // absent values: as shown before
  if (s.voltage_v) st.voltage_v = *s.voltage_v;
  if (s.current_a) st.current_a = *s.current_a;
  if (s.temp_c) st.temp_c = *s.temp_c;
  if (s.soc_pct) st.soc_pct = *s.soc_pct;
  st.mains_ok = s.mains_ok.value_or(true);
  st.lvd_open = s.lvd_open.value_or(false);
  st.generator_running = false;  // never somebody else's generator
  return st;
}

sim::ControllerState ReplayedSite::Simulate(core::TimePoint now, double dt_s, bool ours_now) {
  sim::ControllerState st = last_;
  st.mains_ok = track_.MainsOkAt(now);
  const bool carried = st.mains_ok || ours_now;
  const bool failed = track_.mains_fail_at && *track_.mains_fail_at <= now;
  if (battery_) {
    for (double left = dt_s; left > 1e-9; left -= kStepS)
      battery_->Step(std::min(left, kStepS), carried);
    if (failed && !carried && battery_->empty() && !empty_at_) empty_at_ = now;
    st.voltage_v =
        carried && !failed ? kFloatVPerCell * site_.battery->cells : battery_->voltage_v();
    st.current_a = battery_->current_a();
    st.soc_pct = battery_->soc_pct();
    st.temp_c = battery_->temp_c();
  } else if (failed && !carried && !empty_at_ && site_.runtime_min &&
             now >= *track_.mains_fail_at + core::FromMinutes(*site_.runtime_min)) {
    empty_at_ = now;
  }
  st.generator_running = ours_now && !st.mains_ok;
  st.lvd_open = empty_at_.has_value() && !carried;
  return st;
}

ReplayedSite::Shown ReplayedSite::Step(core::TimePoint now, double dt_s,
                                       std::optional<core::TimePoint> ours) {
  const bool ours_now = ours && *ours <= now;
  // The recording showed the battery empty before any drill generator came.
  if (!empty_at_ && track_.empty_at && *track_.empty_at <= now &&
      (!ours || *track_.empty_at < *ours) &&
      (!simulated_from_ || *track_.empty_at <= *simulated_from_))
    empty_at_ = track_.empty_at;
  Shown shown;
  if (!simulated_from_ && (ours_now || now >= track_.sim_from))
    StartSimulation(ours_now ? std::min(*ours, track_.sim_from) : track_.sim_from);
  if (simulated_from_) {
    shown.source = Source::kSimulated;
    shown.state = Simulate(now, dt_s, ours_now);
  } else if (now < track_.first()) {
    shown.source = Source::kBeforeRecording;
    shown.state = Simulate(now, dt_s, false);  // no sample yet: on mains
  } else if (track_.SilentAt(now)) {
    shown.source = Source::kSilent;
    shown.state = last_;
  } else {
    shown.source = Source::kRecorded;
    shown.state = FromSample(*track_.SampleAt(now));
  }
  last_ = shown.state;
  return shown;
}

}  // namespace sitepower::drill
