// Telemetry replay for drills (`sitepower-drill SCENARIO --replay FILE`): a
// recording (recording/recording.hpp) becomes what the recorded sites'
// simulated controllers show. Pure: samples and a scenario in, tracks and a
// rewritten scenario out; no clock, no I/O except ReadRecordingFile.
//
// Rules (tools/drill/README.md has the operator's version):
// - Times: recorded timestamps are the recording daemon's clock (in a drill,
//   the scenario clock). Default: taken as they are. With ReplayOptions::at,
//   every sample is shifted by one amount so that the anchor (the first
//   sample showing mains lost at any replayed site, or with kFirstSample the
//   first sample) lands there.
// - Sources: a scenario site with samples is replayed; one without keeps the
//   scenario's mains events and battery simulation. A recorded site the
//   scenario does not know is skipped (and named).
// - Mains: a sample shows mains lost when its mains_ok is false, or, without
//   mains_ok, when it discharges more than 1 A (the daemon's own rule; with
//   LVD open the current says nothing and the state before holds). A
//   replayed site's mains_fail is when its first sample showing mains lost
//   starts to be shown (SiteTrack::served_from: halfway from the sample
//   before), its mains_restore likewise for the first sample after that
//   showing mains back; these replace the scenario's mains events for it.
// - Holes: a gap between two samples longer than 5 x the site's local
//   sample interval (the larger of the mean of the 8 gaps before it and of
//   the 8 after) means the controller was silent long enough for the
//   recording daemon to mark it stale (3 missed polls, its default, make a
//   gap of 4; polls that time out or come late, of up to about 3.5): from
//   half an interval after the sample before it until half an interval
//   before the next, the simulated controller does not answer. Unless most
//   other replayed sites (recorded before and after it) have at most one
//   sample in that time too: that is the recording daemon's gap (down,
//   killed, stalled), and the nearest samples are shown instead.
// - Empty: the first sample between mains_fail and the first of
//   mains_restore or a foreign generator that shows LVD open, or a voltage
//   at or below end_v_per_cell x cells.
// - Foreign generator: a sample between mains_fail and mains_restore showing
//   generator_running, or charging (current < -1 A) with mains_ok false. It
//   was somebody else's crew: from then on the drill simulates the site.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.hpp"
#include "core/time.hpp"
#include "recording/recording.hpp"
#include "scenario/scenario.hpp"

namespace sitepower::drill {

enum class ReplayAlign { kFirstMainsFail, kFirstSample };

struct ReplayOptions {
  std::optional<core::TimePoint> at;  // where the anchor lands; nullopt: absolute times
  ReplayAlign align = ReplayAlign::kFirstMainsFail;
};

// What one site's controller showed (shift applied) and what follows from it.
struct SiteTrack {
  core::SiteId site;
  // In time order. Values a sample lacks are filled from the site's earlier
  // samples; mains_ok is always set (derived as above when not recorded).
  std::vector<recording::Sample> samples;
  // When each sample starts to be shown: halfway after the one before (the
  // nearest sample at every moment), across a hole half an interval before
  // it, the first at its own time. Event times below are these times: the
  // best estimate, between two samples, of when the change happened.
  std::vector<core::TimePoint> served_from;
  std::vector<std::pair<core::TimePoint, core::TimePoint>> holes;  // [from, to): silent
  std::optional<core::TimePoint> mains_fail_at;
  std::optional<core::TimePoint> mains_restore_at;  // first after mains_fail_at
  std::optional<core::TimePoint> empty_at;
  std::optional<core::TimePoint> foreign_generator_at;
  // From here the drill simulates the site: the foreign generator, else the
  // last sample (the recording says nothing after it).
  core::TimePoint sim_from;

  core::TimePoint first() const;
  core::TimePoint last() const;
  // The sample shown at `t` (see served_from); nullptr before the first.
  const recording::Sample* SampleAt(core::TimePoint t) const;
  bool SilentAt(core::TimePoint t) const;
  // Mains as shown at `t` (the last sample's after it); true before the first.
  bool MainsOkAt(core::TimePoint t) const;
};

// Builds a site's track from its samples (any order, shift applied).
// `site.battery` (if any) gives the end voltage; `others`: when each other
// replayed site was recorded (sorted ms), to tell the recording daemon's
// gaps from this controller's holes. Needs at least one sample.
SiteTrack BuildTrack(std::vector<recording::Sample> samples, const scenario::Site& site,
                     const std::vector<std::vector<int64_t>>& others = {});

// A recorded battery's state at `t`, for the drill's continuation: Ah drawn
// since full, from the sample shown at `t` (before a foreign generator, whose
// samples show its charging): (1 - SoC) x capacity_ah x strings x soh from
// its recorded SoC; without SoC, (1 - the scenario's soc) x the same + the Ah
// of the recorded current (each sample's over the time it is shown) since
// mains_fail; with neither, the scenario's soc. `empty` once the recording
// showed it empty (at or before `t`).
struct RecordedBattery {
  double drawn_ah = 0;
  bool empty = false;
  std::string basis;  // "recorded SoC 81.0 %", "42.3 Ah integrated from the recorded current"
};
RecordedBattery RecordedBatteryAt(const SiteTrack& track, const core::BatterySpec& spec,
                                  core::TimePoint t);

// FORMAT.md runtime_min of a replayed site (minutes from its recorded
// mains_fail to end voltage had nobody come): to the recorded empty_at when
// the recording shows it; else the minutes recorded on battery (to the last
// sample before mains_restore or a foreign generator) plus what the drill's
// battery, resumed from that sample (RecordedBatteryAt), has left at the
// scenario's load; a site without a battery model: its scenario runtime_min.
// nullopt when the recording shows no mains failure.
std::optional<double> RecordedRuntimeMin(const SiteTrack& track, const scenario::Site& site);

// The shift (added to every recorded time) that puts the anchor of `tracks`
// (unshifted) at options.at; zero without options.at. `anchor` (optional
// out) says which sample it used.
core::Millis ReplayShift(const std::map<core::SiteId, SiteTrack>& tracks,
                         const ReplayOptions& options, std::string* anchor, int offset_min);

struct ReplayPlan {
  std::map<core::SiteId, SiteTrack> tracks;  // replayed sites only
  std::vector<core::SiteId> replayed;        // scenario order
  std::vector<core::SiteId> simulated;       // scenario sites without samples
  std::vector<std::string> unknown_sites;    // recorded, not in the scenario: skipped
  core::Millis shift{0};
  std::string anchor;          // what was aligned, for the report ("" without --replay-at)
  size_t samples = 0;          // samples of the replayed sites
  size_t samples_in_file = 0;  // every sample parsed, skipped sites' included
};

// Assigns each site its source, applies the shift and rewrites `s`'s mains
// events: the replayed sites' are replaced by their recorded ones. Errors
// (InvalidArgument): no sample at all, no recorded site in the scenario, a
// recording that (after the shift) lies wholly outside start..end.
core::Result<ReplayPlan> PlanReplay(const std::vector<recording::Sample>& samples,
                                    const ReplayOptions& options, scenario::Scenario* s);

// Reads a recording file. NotFound naming the path when it cannot be read;
// a damaged file is no error here: Parsed::error says where, and every
// sample before the damage is kept.
core::Result<recording::Parsed> ReadRecordingFile(const std::string& path);

}  // namespace sitepower::drill
