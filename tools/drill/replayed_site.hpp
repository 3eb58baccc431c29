// One replayed site's plant in a drill: what its simulated controller shows
// as scenario time advances, from its SiteTrack and, once the recording no
// longer tells, from the drill's battery simulation. The counterfactual
// rules (tools/drill/README.md):
// - Before its first sample the site shows the scenario's battery on mains.
// - From its first sample it shows the recorded values, each sample from
//   halfway after the one before it (SiteTrack::served_from), and is silent
//   in the recording's holes. The recorded generator_running is never
//   shown: a generator shows only when the drill's own crew brought it (or
//   the site has a fixed one, which the drill adds).
// - It is simulated (the drill's battery, resumed from the sample shown then,
//   by RecordedBatteryAt; mains as recorded) from the first of: a drill crew's
//   generator carrying it (then charging), a foreign generator in the
//   recording, the end of its recording. A simulated controller always answers.
// - Empty: the recorded empty_at when no drill generator came before it,
//   else when the simulated battery reaches end voltage with nobody there.
// Not thread-safe; the drill's loop owns it.
#pragma once

#include <optional>
#include <string>

#include "drill/replay.hpp"
#include "sim/battery_sim.hpp"
#include "sim/controller_sim.hpp"

namespace sitepower::drill {

class ReplayedSite {
 public:
  enum class Source { kBeforeRecording, kRecorded, kSilent, kSimulated };
  struct Shown {
    sim::ControllerState state;
    Source source = Source::kBeforeRecording;
  };

  // `site` must outlive this object.
  ReplayedSite(SiteTrack track, const scenario::Site& site);

  // Advances to `now`, `dt_s` scenario seconds after the previous call.
  // `ours`: when a drill crew's generator started carrying the site.
  Shown Step(core::TimePoint now, double dt_s, std::optional<core::TimePoint> ours);

  const SiteTrack& track() const { return track_; }
  // When the battery reached end voltage with nobody carrying the site.
  std::optional<core::TimePoint> empty_at() const { return empty_at_; }
  // When the drill took over, and from what state.
  std::optional<core::TimePoint> simulated_from() const { return simulated_from_; }
  const std::string& basis() const { return basis_; }

 private:
  void StartSimulation(core::TimePoint at);
  sim::ControllerState FromSample(const recording::Sample& s) const;
  sim::ControllerState Simulate(core::TimePoint now, double dt_s, bool ours_now);

  SiteTrack track_;
  const scenario::Site& site_;
  std::optional<sim::BatterySim> battery_;  // the scenario's, then the continuation
  std::optional<core::TimePoint> empty_at_, simulated_from_;
  std::string basis_;
  sim::ControllerState last_;
};

}  // namespace sitepower::drill
