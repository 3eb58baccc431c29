#include "drill/replay.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>

#include "sim/battery_sim.hpp"

namespace sitepower::drill {
namespace {

using core::Millis;
using core::TimePoint;
using recording::Sample;

constexpr double kMainsLostA = 1.0;  // discharging above this: mains lost (the daemon's rule)
constexpr double kChargingA = -1.0;  // charging below this while mains lost: a generator
// A gap this many local intervals long is a hole. 3 polls missed in a row
// (the daemon's default stale_after_missed) make a gap of 4; polls that
// time out or come late (the daemon or the box busy) make gaps of up to 3.5
// at high drill speeds (a plan on the daemon's io_context delays every poll)
// without the daemon ever seeing the site stale.
constexpr double kHoleFactor = 5;
constexpr size_t kIntervalWindow = 8;   // gaps on each side for the local interval
constexpr double kVoltEpsilon = 0.005;  // recorded volts have 0.01 V steps

TimePoint At(const Sample& s) { return TimePoint(Millis(s.t_ms)); }

std::optional<bool> MainsLost(const Sample& s) {
  if (s.mains_ok) return !*s.mains_ok;
  // An open LVD cuts the current; it says nothing about mains.
  if (s.lvd_open.value_or(false)) return std::nullopt;
  if (s.current_a) return *s.current_a > kMainsLostA;
  return std::nullopt;
}

// A late poll and the quick one after it average out to the schedule.
Millis Mean(const std::vector<Millis>& v) {
  if (v.empty()) return Millis(0);
  Millis sum(0);
  for (Millis m : v) sum += m;
  return sum / static_cast<int64_t>(v.size());
}

// Fills what a sample lacks from the samples before it; sets mains_ok.
void Fill(std::vector<Sample>& samples) {
  bool lost = false;
  for (size_t i = 0; i < samples.size(); ++i) {
    Sample& s = samples[i];
    // Without a mains point, as the daemon reads it: after a loss, a battery
    // that stops discharging is empty (its disconnect cut the load) or
    // charged by a generator, or mains came back; the current cannot tell
    // which, so mains stays lost (a charging battery then shows a foreign
    // generator below).
    if (auto l = MainsLost(s); l && (*l || s.mains_ok || !lost)) lost = *l;
    if (i > 0) {
      const Sample& p = samples[i - 1];
      if (!s.voltage_v) s.voltage_v = p.voltage_v;
      if (!s.current_a) s.current_a = p.current_a;
      if (!s.temp_c) s.temp_c = p.temp_c;
      if (!s.soc_pct) s.soc_pct = p.soc_pct;
      if (!s.lvd_open) s.lvd_open = p.lvd_open;
      if (!s.generator_running) s.generator_running = p.generator_running;
    }
    s.mains_ok = !lost;
  }
}

// Whether most other sites recorded before and after [from, to) were not
// recorded in it either (at most one sample each): the recording daemon was
// down or stalled, which says nothing about this site's controller. With no
// such site to compare, it cannot tell: false.
bool RecorderGap(const std::vector<std::vector<int64_t>>& others, TimePoint from, TimePoint to) {
  const int64_t a = from.time_since_epoch().count(), b = to.time_since_epoch().count();
  int spanning = 0, polled = 0;
  for (const auto& times : others) {
    if (times.empty() || times.front() >= a || times.back() < b) continue;
    ++spanning;
    auto lo = std::lower_bound(times.begin(), times.end(), a);
    auto hi = std::lower_bound(times.begin(), times.end(), b);
    if (hi - lo >= 2) ++polled;
  }
  return spanning > 0 && 2 * polled < spanning;
}

// Each sample is shown from halfway after the one before it (the nearest
// sample at every moment); across a hole, from half a local interval before it.
void FindHolesAndServiceTimes(SiteTrack& t, const std::vector<std::vector<int64_t>>& others) {
  const auto& s = t.samples;
  std::vector<Millis> gaps;
  for (size_t i = 1; i < s.size(); ++i) gaps.push_back(At(s[i]) - At(s[i - 1]));
  t.served_from.assign(1, At(s[0]));
  for (size_t g = 0; g < gaps.size(); ++g) {
    std::vector<Millis> before(gaps.begin() + static_cast<long>(g - std::min(g, kIntervalWindow)),
                               gaps.begin() + static_cast<long>(g));
    std::vector<Millis> after(
        gaps.begin() + static_cast<long>(g + 1),
        gaps.begin() + static_cast<long>(std::min(gaps.size(), g + 1 + kIntervalWindow)));
    const Millis local = std::max(Mean(before), Mean(after));
    const TimePoint from = At(s[g]) + local / 2, to = At(s[g + 1]) - local / 2;
    if (local > Millis(0) && gaps[g].count() > kHoleFactor * static_cast<double>(local.count()) &&
        !RecorderGap(others, from, to)) {
      t.holes.emplace_back(from, to);
      t.served_from.push_back(At(s[g + 1]) - local / 2);
    } else {
      t.served_from.push_back(At(s[g]) + gaps[g] / 2);
    }
  }
}

}  // namespace

TimePoint SiteTrack::first() const { return At(samples.front()); }
TimePoint SiteTrack::last() const { return At(samples.back()); }

const Sample* SiteTrack::SampleAt(TimePoint t) const {
  auto it = std::upper_bound(served_from.begin(), served_from.end(), t);
  if (it == served_from.begin()) return nullptr;
  return &samples[static_cast<size_t>(it - served_from.begin()) - 1];
}

bool SiteTrack::SilentAt(TimePoint t) const {
  for (const auto& [from, to] : holes)
    if (t >= from && t < to) return true;
  return false;
}

bool SiteTrack::MainsOkAt(TimePoint t) const {
  const Sample* s = SampleAt(t);
  return !s || s->mains_ok.value_or(true);
}

SiteTrack BuildTrack(std::vector<Sample> samples, const scenario::Site& site,
                     const std::vector<std::vector<int64_t>>& others) {
  SiteTrack t;
  t.site = site.id;
  std::stable_sort(samples.begin(), samples.end(),
                   [](const Sample& a, const Sample& b) { return a.t_ms < b.t_ms; });
  t.samples = std::move(samples);
  Fill(t.samples);
  FindHolesAndServiceTimes(t, others);
  // The end voltage, if the scenario gives a battery (a plain value: GCC 12
  // sees an optional<double> here as maybe uninitialized at -O2).
  const bool has_end_v = site.battery.has_value();
  const double end_v = has_end_v ? site.battery->end_v_per_cell * site.battery->cells : 0.0;
  for (size_t i = 0; i < t.samples.size(); ++i) {
    const Sample& s = t.samples[i];
    const TimePoint from = t.served_from[i];
    const bool lost = !*s.mains_ok;
    if (!t.mains_fail_at) {
      if (lost)
        t.mains_fail_at = from;
      else
        continue;
    }
    if (!lost) {
      t.mains_restore_at = from;
      break;
    }
    if (t.foreign_generator_at) continue;
    if (s.generator_running.value_or(false) || s.current_a.value_or(0) < kChargingA) {
      t.foreign_generator_at = from;
      continue;
    }
    if (!t.empty_at && (s.lvd_open.value_or(false) ||
                        (has_end_v && s.voltage_v && *s.voltage_v <= end_v + kVoltEpsilon)))
      t.empty_at = from;
  }
  t.sim_from = t.foreign_generator_at.value_or(t.last());
  return t;
}

RecordedBattery RecordedBatteryAt(const SiteTrack& track, const core::BatterySpec& spec,
                                  TimePoint t) {
  RecordedBattery b;
  const double usable = spec.capacity_ah * spec.strings * spec.soh;
  b.empty = track.empty_at && *track.empty_at <= t;
  // A foreign generator's samples show its charging, not this discharge.
  if (track.foreign_generator_at && t >= *track.foreign_generator_at)
    t = *track.foreign_generator_at - Millis(1);
  const Sample* s = track.SampleAt(t);
  if (s && s->soc_pct) {
    b.drawn_ah = (1 - *s->soc_pct / 100) * usable;
    char text[64];
    std::snprintf(text, sizeof text, "recorded SoC %.1f %%", *s->soc_pct);
    b.basis = text;
    return b;
  }
  b.drawn_ah = (1 - spec.soc) * usable;
  if (!s || !s->current_a || !track.mains_fail_at || t < *track.mains_fail_at) {
    b.basis = "the scenario's soc (no recorded SoC or current)";
    return b;
  }
  double ah = 0;  // each sample's current over the time it is shown
  for (size_t i = 0; i < track.samples.size(); ++i) {
    const Sample& k = track.samples[i];
    const TimePoint from = std::max(track.served_from[i], *track.mains_fail_at);
    const TimePoint to = i + 1 < track.samples.size() ? std::min(track.served_from[i + 1], t) : t;
    if (to <= from || !k.current_a) continue;
    ah += *k.current_a * std::chrono::duration<double, std::ratio<3600>>(to - from).count();
  }
  b.drawn_ah = std::clamp(b.drawn_ah + ah, 0.0, usable);
  char text[96];
  std::snprintf(text, sizeof text, "%.1f Ah integrated from the recorded current", ah);
  b.basis = text;
  return b;
}

std::optional<double> RecordedRuntimeMin(const SiteTrack& track, const scenario::Site& site) {
  if (!track.mains_fail_at) return std::nullopt;
  const TimePoint fail = *track.mains_fail_at;
  if (track.empty_at) return core::ToMinutes(*track.empty_at - fail);
  if (!site.battery) return site.runtime_min;
  // The last sample that still shows the discharge.
  std::optional<TimePoint> end_of_discharge = track.mains_restore_at;
  if (track.foreign_generator_at &&
      (!end_of_discharge || *track.foreign_generator_at < *end_of_discharge))
    end_of_discharge = track.foreign_generator_at;
  // Its state was measured at its own time (it is shown from a little before).
  TimePoint t0 = fail, shown = fail;
  for (size_t i = 0; i < track.samples.size(); ++i) {
    const TimePoint from = track.served_from[i];
    if (from >= fail && (!end_of_discharge || from < *end_of_discharge)) {
      t0 = std::max(fail, At(track.samples[i]));
      shown = from;
    }
  }
  RecordedBattery b = RecordedBatteryAt(track, *site.battery, shown);
  sim::BatterySim rest = sim::BatterySim::Resume(*site.battery, site.load_w, b.drawn_ah, b.empty);
  return core::ToMinutes(t0 - fail) + rest.MinutesToEmpty();
}

Millis ReplayShift(const std::map<core::SiteId, SiteTrack>& tracks, const ReplayOptions& options,
                   std::string* anchor, int offset_min) {
  if (!options.at || tracks.empty()) return Millis(0);
  std::optional<TimePoint> first_fail, first_sample;
  std::string fail_site, sample_site;
  for (const auto& [id, t] : tracks) {
    if (t.mains_fail_at && (!first_fail || *t.mains_fail_at < *first_fail)) {
      first_fail = t.mains_fail_at;
      fail_site = id;
    }
    if (!first_sample || t.first() < *first_sample) {
      first_sample = t.first();
      sample_site = id;
    }
  }
  TimePoint from = *first_sample;
  std::string what = "first sample (" + sample_site + ")";
  if (options.align == ReplayAlign::kFirstMainsFail && first_fail) {
    from = *first_fail;
    what = "first mains failure (" + fail_site + ")";
  } else if (options.align == ReplayAlign::kFirstMainsFail) {
    what += ": the recording shows no mains failure";
  }
  if (anchor)
    *anchor = what + ", recorded at " + core::FormatIso8601(from, offset_min) + ", moved to " +
              core::FormatIso8601(*options.at, offset_min);
  return *options.at - from;
}

core::Result<ReplayPlan> PlanReplay(const std::vector<Sample>& samples,
                                    const ReplayOptions& options, scenario::Scenario* s) {
  if (samples.empty()) return core::Status::InvalidArgument("the recording has no sample");
  std::map<core::SiteId, std::vector<Sample>> by_site;
  std::set<std::string> unknown;
  for (const Sample& k : samples) {
    if (!s->FindSite(k.site))
      unknown.insert(k.site);
    else if (!k.poll_failed)  // a failed poll is a hole: the controller was silent
      by_site[k.site].push_back(k);
  }
  ReplayPlan plan;
  plan.samples_in_file = samples.size();
  plan.unknown_sites.assign(unknown.begin(), unknown.end());
  if (by_site.empty()) {
    std::string names;
    for (const auto& u : plan.unknown_sites) names += (names.empty() ? "" : ", ") + u;
    return core::Status::InvalidArgument("no recorded site is in scenario " + s->name +
                                         " (recorded: " + names + ")");
  }
  // Unshifted tracks find the anchor; the shifted ones are what is replayed.
  std::map<core::SiteId, SiteTrack> raw;
  for (const auto& [id, list] : by_site) raw.emplace(id, BuildTrack(list, *s->FindSite(id), {}));
  plan.shift = ReplayShift(raw, options, &plan.anchor, s->offset_min());
  for (auto& [id, list] : by_site)
    for (Sample& k : list) k.t_ms += plan.shift.count();
  TimePoint first = TimePoint::max(), last = TimePoint::min();
  for (auto& [id, list] : by_site) {
    std::vector<std::vector<int64_t>> others;  // when the other replayed sites were recorded
    for (const auto& [other, other_list] : by_site) {
      if (other == id) continue;
      others.emplace_back();
      for (const Sample& k : other_list) others.back().push_back(k.t_ms);
      std::sort(others.back().begin(), others.back().end());
    }
    plan.samples += list.size();
    SiteTrack t = BuildTrack(std::move(list), *s->FindSite(id), others);
    first = std::min(first, t.first());
    last = std::max(last, t.last());
    plan.tracks.emplace(id, std::move(t));
  }
  const int off = s->offset_min();
  if (last < s->start.at || first > s->end) {
    return core::Status::InvalidArgument(
        "the recording spans " + core::FormatIso8601(first, off) + " to " +
        core::FormatIso8601(last, off) + (plan.shift.count() ? " (shifted)" : "") +
        ", outside the scenario's " + core::FormatIso8601(s->start.at, off) + " to " +
        core::FormatIso8601(s->end, off) + "; --replay-at HH:MM moves it");
  }
  for (const auto& site : s->sites)
    (plan.tracks.count(site.id) ? plan.replayed : plan.simulated).push_back(site.id);

  // The replayed sites' mains events come from the recording.
  std::vector<scenario::Event> events;
  for (scenario::Event e : s->events) {
    std::vector<core::SiteId>* ids = nullptr;
    if (auto* f = std::get_if<scenario::MainsFail>(&e.body)) ids = &f->sites;
    if (auto* r = std::get_if<scenario::MainsRestore>(&e.body)) ids = &r->sites;
    if (ids) {
      std::erase_if(*ids, [&plan](const core::SiteId& id) { return plan.tracks.count(id) > 0; });
      if (ids->empty()) continue;
    }
    events.push_back(std::move(e));
  }
  for (const auto& [id, t] : plan.tracks) {
    if (t.mains_fail_at) events.push_back({*t.mains_fail_at, scenario::MainsFail{{id}}, 0});
    if (t.mains_restore_at)
      events.push_back({*t.mains_restore_at, scenario::MainsRestore{{id}}, 0});
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const scenario::Event& a, const scenario::Event& b) { return a.at < b.at; });
  s->events = std::move(events);
  return plan;
}

core::Result<recording::Parsed> ReadRecordingFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::Status::NotFound(path + ": cannot open the recording");
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  if (bytes.empty()) return core::Status::InvalidArgument(path + ": the recording is empty");
  return recording::Parse(bytes);
}

}  // namespace sitepower::drill
