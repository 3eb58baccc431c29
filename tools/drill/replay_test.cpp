// The pure parts of --replay: time mapping, sources, tracks, the
// continuation rule and the replayed site's counterfactual.
#include <gtest/gtest.h>

#include <algorithm>

#include "drill/replay.hpp"
#include "drill/replayed_site.hpp"
#include "sim/battery_sim.hpp"

namespace sitepower::drill {
namespace {

using core::TimePoint;
using recording::Sample;
using std::chrono::minutes;
using std::chrono::seconds;

scenario::Scenario Wuzhai() {
  auto s = scenario::LoadScenarioFile(SITEPOWER_SHARED_DIR "/scenarios/wuzhai-2020-03-08.yaml");
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return *s;
}

TimePoint On(const scenario::Scenario& s, const char* hhmm) {
  return *core::ParseHhMmOn(hhmm, s.start);
}

// A recorded site: 2 min samples on mains from `from`, one at `fail` (mains lost),
// then 1 min samples at `amps` with SoC falling `soc_per_min` % a minute.
std::vector<Sample> Outage(const std::string& site, TimePoint from, TimePoint fail, TimePoint to,
                           double amps = 50, double soc_per_min = 0.2) {
  std::vector<Sample> out;
  for (TimePoint t = from; t <= to;
       t = t < fail ? std::min<TimePoint>(t + minutes(2), fail) : t + minutes(1)) {
    Sample k;
    k.site = site;
    k.t_ms = t.time_since_epoch().count();
    const bool lost = t >= fail;
    const double on_batt_min = lost ? core::ToMinutes(t - fail) : 0;
    k.mains_ok = !lost;
    k.voltage_v = lost ? 49.0 - 0.01 * on_batt_min : 53.5;
    k.current_a = lost ? amps : 0;
    k.temp_c = 5;
    k.soc_pct = 100 - soc_per_min * on_batt_min;
    k.generator_running = false;
    k.lvd_open = false;
    out.push_back(k);
  }
  return out;
}

TimePoint At(const Sample& k) { return TimePoint(core::Millis(k.t_ms)); }

TEST(DrillReplayTest, AbsoluteTimesByDefaultAndReplayAtMovesTheFirstMainsFailure) {
  scenario::Scenario s = Wuzhai();
  // A real outage on another day: WZ-05 lost mains first, WZ-01 7.5 min later.
  // Event times are halfway from the sample before (2 min apart on mains):
  // WZ-05 19:30 (samples at 19 and 20 min), WZ-01 26:45 (26 and 27:30).
  auto day = core::ParseIso8601("2021-11-02T13:00:00+08:00")->at;
  std::vector<Sample> rec =
      Outage("WZ-01", day, day + minutes(27) + seconds(30), day + minutes(90));
  auto b = Outage("WZ-05", day + minutes(1), day + minutes(20), day + minutes(90));
  rec.insert(rec.end(), b.begin(), b.end());

  // Absolute: nothing moves, and this recording is outside the scenario's day.
  scenario::Scenario absolute = s;
  auto outside = PlanReplay(rec, {}, &absolute);
  ASSERT_FALSE(outside.ok());
  EXPECT_NE(outside.status().message().find("--replay-at"), std::string::npos)
      << outside.status().message();

  ReplayOptions at_0830;
  at_0830.at = On(s, "08:30");
  scenario::Scenario moved = s;
  auto plan = PlanReplay(rec, at_0830, &moved);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->shift, On(s, "08:30") - (day + minutes(19) + seconds(30)));
  EXPECT_EQ(plan->tracks.at("WZ-05").mains_fail_at, On(s, "08:30"));
  EXPECT_EQ(plan->tracks.at("WZ-01").mains_fail_at, On(s, "08:37") + seconds(15));
  EXPECT_NE(plan->anchor.find("first mains failure (WZ-05)"), std::string::npos) << plan->anchor;

  ReplayOptions first_sample = at_0830;
  first_sample.align = ReplayAlign::kFirstSample;
  scenario::Scenario moved2 = s;
  plan = PlanReplay(rec, first_sample, &moved2);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->tracks.at("WZ-01").first(), On(s, "08:30"));
  EXPECT_EQ(plan->tracks.at("WZ-05").mains_fail_at, On(s, "08:49") + seconds(30));

  // Same scenario day: absolute times line up as recorded.
  std::vector<Sample> same = Outage("WZ-01", On(s, "08:00"), On(s, "08:31"), On(s, "09:00"));
  scenario::Scenario same_s = s;
  plan = PlanReplay(same, {}, &same_s);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->shift.count(), 0);
  EXPECT_TRUE(plan->anchor.empty());
  EXPECT_EQ(plan->tracks.at("WZ-01").mains_fail_at, On(s, "08:30") + seconds(30));

  // No mains failure anywhere: the first sample is the anchor, and it says so.
  std::vector<Sample> calm = Outage("WZ-01", day, day + minutes(500), day + minutes(30));
  scenario::Scenario calm_s = s;
  plan = PlanReplay(calm, at_0830, &calm_s);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->tracks.at("WZ-01").first(), On(s, "08:30"));
  EXPECT_NE(plan->anchor.find("no mains failure"), std::string::npos) << plan->anchor;
}

TEST(DrillReplayTest, RecordedSitesGetTheRecordingsMainsEventsOthersKeepTheScenarios) {
  scenario::Scenario s = Wuzhai();
  std::vector<Sample> rec = Outage("WZ-01", On(s, "08:00"), On(s, "08:31"), On(s, "09:10"));
  auto b = Outage("WZ-02", On(s, "08:00"), On(s, "08:32"), On(s, "09:10"));
  rec.insert(rec.end(), b.begin(), b.end());
  // WZ-02's mains come back at 09:05.
  for (auto& k : rec)
    if (k.site == "WZ-02" && At(k) >= On(s, "09:05")) k.mains_ok = true, k.current_a = -5;
  Sample stranger;
  stranger.site = "XX-99";
  stranger.t_ms = On(s, "08:40").time_since_epoch().count();
  rec.push_back(stranger);

  auto plan = PlanReplay(rec, {}, &s);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->replayed, (std::vector<std::string>{"WZ-01", "WZ-02"}));
  EXPECT_EQ(plan->simulated.size(), 16u);
  EXPECT_EQ(std::count(plan->simulated.begin(), plan->simulated.end(), "WZ-01"), 0);
  EXPECT_EQ(plan->unknown_sites, (std::vector<std::string>{"XX-99"}));
  EXPECT_EQ(plan->samples, rec.size() - 1);
  EXPECT_EQ(plan->samples_in_file, rec.size());
  // Scoring reads these: the recorded times for recorded sites, 08:30 for the rest.
  // (halfway from the sample before: 08:30/08:31, 08:30/08:32, 09:04/09:05)
  EXPECT_EQ(s.FirstMainsFail("WZ-01"), On(s, "08:30") + seconds(30));
  EXPECT_EQ(s.FirstMainsFail("WZ-02"), On(s, "08:31"));
  EXPECT_EQ(s.MainsRestoreAfterFail("WZ-02"), On(s, "09:04") + seconds(30));
  EXPECT_EQ(s.MainsRestoreAfterFail("WZ-01"), std::nullopt);  // not the scenario's 17:30
  EXPECT_EQ(s.FirstMainsFail("WZ-03"), On(s, "08:30"));
  EXPECT_EQ(s.MainsRestoreAfterFail("WZ-03"), On(s, "17:30"));
  EXPECT_TRUE(std::is_sorted(
      s.events.begin(), s.events.end(),
      [](const scenario::Event& a, const scenario::Event& b) { return a.at < b.at; }));

  // Nothing of the scenario in it: an error that names what was recorded.
  scenario::Scenario s2 = Wuzhai();
  auto none = PlanReplay({stranger}, {}, &s2);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("XX-99"), std::string::npos);
  EXPECT_FALSE(PlanReplay({}, {}, &s2).ok());
}

TEST(DrillReplayTest, TrackFindsMainsHolesEmptyAndForeignGenerators) {
  scenario::Scenario s = Wuzhai();
  const scenario::Site& site = *s.FindSite("WZ-01");  // 24 cells, end 1.80 V: 43.2 V
  auto rec = Outage("WZ-01", On(s, "08:00"), On(s, "08:30"), On(s, "10:00"));
  // No mains point: a discharge above 1 A is mains lost (the daemon's rule).
  for (auto& k : rec) k.mains_ok.reset();
  // A hole: the controller was silent 09:00-09:06 (exclusive).
  std::erase_if(rec,
                [&s](const Sample& k) { return At(k) > On(s, "09:00") && At(k) < On(s, "09:06"); });
  // End voltage reached at 09:20, LVD opened at 09:25.
  for (auto& k : rec) {
    if (At(k) >= On(s, "09:20")) k.voltage_v = 43.2;
    if (At(k) >= On(s, "09:25")) k.lvd_open = true, k.current_a = 0;
  }
  SiteTrack t = BuildTrack(rec, site);
  EXPECT_EQ(t.mains_fail_at, On(s, "08:29"));  // samples at 08:28 and 08:30
  EXPECT_EQ(t.mains_restore_at, std::nullopt);
  EXPECT_EQ(t.empty_at, On(s, "09:19") + seconds(30));
  EXPECT_EQ(t.foreign_generator_at, std::nullopt);
  EXPECT_EQ(t.sim_from, On(s, "10:00"));
  // Only the silent stretch is a hole (not the step from 2 min to 1 min samples).
  ASSERT_EQ(t.holes.size(), 1u);
  EXPECT_EQ(t.holes[0].first, On(s, "09:00") + seconds(30));
  EXPECT_EQ(t.holes[0].second, On(s, "09:06") - seconds(30));
  EXPECT_FALSE(t.SilentAt(On(s, "09:00") + seconds(20)));
  EXPECT_TRUE(t.SilentAt(On(s, "09:03")));
  EXPECT_FALSE(t.SilentAt(On(s, "09:05") + seconds(40)));
  // Around the hole each side's sample is shown up to it.
  EXPECT_EQ(At(*t.SampleAt(On(s, "09:00") + seconds(29))), On(s, "09:00"));
  EXPECT_EQ(At(*t.SampleAt(On(s, "09:05") + seconds(30))), On(s, "09:06"));
  EXPECT_FALSE(t.MainsOkAt(On(s, "08:45")));
  EXPECT_TRUE(t.MainsOkAt(On(s, "07:00")));  // before the recording
  // Other sites recorded meanwhile: still this controller's hole. Most
  // others silent then too (though recorded before and after): the
  // recording daemon's gap, not a hole.
  std::vector<int64_t> polled, silent;
  for (TimePoint k = On(s, "08:00"); k <= On(s, "10:00"); k += seconds(20)) {
    polled.push_back(k.time_since_epoch().count());
    if (k <= On(s, "09:00") || k >= On(s, "09:06")) silent.push_back(k.time_since_epoch().count());
  }
  EXPECT_EQ(BuildTrack(rec, site, {polled}).holes.size(), 1u);
  EXPECT_EQ(BuildTrack(rec, site, {polled, polled, silent}).holes.size(), 1u);
  SiteTrack gap = BuildTrack(rec, site, {polled, silent, silent});
  EXPECT_TRUE(gap.holes.empty());
  EXPECT_FALSE(gap.SilentAt(On(s, "09:03")));
  EXPECT_EQ(At(*gap.SampleAt(On(s, "09:02") + seconds(59))), On(s, "09:00"));
  EXPECT_EQ(At(*gap.SampleAt(On(s, "09:03"))), On(s, "09:06"));
  // Otherwise the nearest sample is shown.
  ASSERT_NE(t.SampleAt(On(s, "08:45") + seconds(29)), nullptr);
  EXPECT_EQ(At(*t.SampleAt(On(s, "08:45") + seconds(29))), On(s, "08:45"));
  EXPECT_EQ(At(*t.SampleAt(On(s, "08:45") + seconds(30))), On(s, "08:46"));
  EXPECT_EQ(t.SampleAt(On(s, "07:59")), nullptr);

  // Somebody else's generator at 09:10: from then the drill simulates; an
  // end voltage after it is not this discharge's.
  auto gen = Outage("WZ-01", On(s, "08:00"), On(s, "08:30"), On(s, "10:00"));
  for (auto& k : gen) {
    if (At(k) >= On(s, "09:10")) k.generator_running = true, k.current_a = -20;
    if (At(k) >= On(s, "09:20")) k.voltage_v = 43.0;
  }
  SiteTrack g = BuildTrack(gen, site);
  EXPECT_EQ(g.foreign_generator_at, On(s, "09:09") + seconds(30));
  EXPECT_EQ(g.sim_from, On(s, "09:09") + seconds(30));
  EXPECT_EQ(g.empty_at, std::nullopt);
  // Without generator_running: charging while mains are lost is a generator too.
  for (auto& k : gen) k.generator_running.reset();
  EXPECT_EQ(BuildTrack(gen, site).foreign_generator_at, On(s, "09:09") + seconds(30));
}

TEST(DrillReplayTest, ContinuationStartsFromRecordedSocElseFromIntegratedCurrent) {
  scenario::Scenario s = Wuzhai();
  const scenario::Site& site = *s.FindSite("WZ-01");
  const core::BatterySpec& spec = *site.battery;
  const double usable = spec.capacity_ah * spec.strings * spec.soh;  // 273 Ah
  auto rec = Outage("WZ-01", On(s, "08:00"), On(s, "08:30"), On(s, "10:00"), 50, 0.25);
  SiteTrack t = BuildTrack(rec, site);
  RecordedBattery at_0930 = RecordedBatteryAt(t, spec, On(s, "09:30") + seconds(20));
  EXPECT_NEAR(at_0930.drawn_ah, 0.15 * usable, 1e-6);  // SoC 85 % after 60 min
  EXPECT_FALSE(at_0930.empty);
  EXPECT_NE(at_0930.basis.find("recorded SoC 85.0"), std::string::npos) << at_0930.basis;

  for (auto& k : rec) k.soc_pct.reset();
  SiteTrack n = BuildTrack(rec, site);
  RecordedBattery i = RecordedBatteryAt(n, spec, On(s, "09:30"));
  // 50 A from full, shown from 08:29 (halfway from the 08:28 sample) to 09:30.
  EXPECT_NEAR(i.drawn_ah, 50.0 * 61 / 60, 1e-6);
  EXPECT_NE(i.basis.find("integrated"), std::string::npos) << i.basis;

  // After a foreign generator (shown from 08:59:30), the state from before
  // it, not its charging.
  for (auto& k : rec)
    if (At(k) >= On(s, "09:00")) k.generator_running = true, k.current_a = -30;
  SiteTrack g = BuildTrack(rec, site);
  EXPECT_NEAR(RecordedBatteryAt(g, spec, On(s, "09:40")).drawn_ah, 50.0 * 30.5 / 60, 1e-3);
}

TEST(DrillReplayTest, RuntimeFromTheRecordedDischargeOrItsContinuation) {
  scenario::Scenario s = Wuzhai();
  const scenario::Site& site = *s.FindSite("WZ-01");
  // The recording reaches end voltage 95.5 min after mains failed (shown from
  // 10:04:30 and 08:29: halfway from the samples before).
  auto rec = Outage("WZ-01", On(s, "08:00"), On(s, "08:30"), On(s, "10:30"));
  for (auto& k : rec)
    if (At(k) >= On(s, "10:05")) k.voltage_v = 43.1;
  EXPECT_DOUBLE_EQ(*RecordedRuntimeMin(BuildTrack(rec, site), site), 95.5);

  // A recording of the drill's own battery that ends after 60 min on battery:
  // the continuation gives (nearly) that battery's whole runtime.
  sim::BatterySim b(*site.battery, site.load_w);
  std::vector<Sample> own;
  for (int min = 0; min <= 90; ++min) {
    Sample k;
    k.site = "WZ-01";
    k.t_ms = (On(s, "08:00") + minutes(min)).time_since_epoch().count();
    const bool lost = min >= 30;
    k.mains_ok = !lost;
    k.voltage_v = b.voltage_v();
    k.current_a = lost ? b.current_a() : 0;
    k.soc_pct = b.soc_pct();
    own.push_back(k);
    if (lost) b.Step(60, false);
  }
  const double truth = sim::BatterySim::TrueRuntimeMin(*site.battery, site.load_w);
  const double replayed = *RecordedRuntimeMin(BuildTrack(own, site), site);
  EXPECT_NEAR(replayed, truth, 0.02 * truth);
  // Without SoC, from the integrated current: as close.
  for (auto& k : own) k.soc_pct.reset();
  EXPECT_NEAR(*RecordedRuntimeMin(BuildTrack(own, site), site), truth, 0.02 * truth);
  // No mains failure recorded: no runtime.
  auto calm = Outage("WZ-01", On(s, "08:00"), On(s, "23:00"), On(s, "09:00"));
  EXPECT_EQ(RecordedRuntimeMin(BuildTrack(calm, site), site), std::nullopt);
}

// Steps `r` from `from` to `to` in 10 s ticks; returns the last shown state.
ReplayedSite::Shown StepThrough(ReplayedSite& r, TimePoint from, TimePoint to,
                                std::optional<TimePoint> ours = std::nullopt) {
  ReplayedSite::Shown shown;
  for (TimePoint t = from; t <= to; t += seconds(10)) shown = r.Step(t, 10, ours);
  return shown;
}

TEST(DrillReplayTest, ReplayedSiteShowsTheRecordingThenOurGeneratorNotTheirs) {
  scenario::Scenario s = Wuzhai();
  const scenario::Site& site = *s.FindSite("WZ-01");
  auto rec = Outage("WZ-01", On(s, "08:10"), On(s, "08:30"), On(s, "10:00"));
  for (auto& k : rec) {
    if (At(k) == On(s, "08:16")) k.generator_running = true;  // a generator test on mains
    if (At(k) >= On(s, "09:30")) k.generator_running = true, k.current_a = -20;  // the real crew's
  }
  ReplayedSite r(BuildTrack(rec, site), site);
  EXPECT_EQ(r.track().foreign_generator_at, On(s, "09:29") + seconds(30));

  auto before = r.Step(On(s, "08:05"), 10, std::nullopt);
  EXPECT_EQ(before.source, ReplayedSite::Source::kBeforeRecording);
  EXPECT_TRUE(before.state.mains_ok);
  auto test_run = StepThrough(r, On(s, "08:10"), On(s, "08:16"));
  EXPECT_EQ(test_run.source, ReplayedSite::Source::kRecorded);
  EXPECT_FALSE(test_run.state.generator_running);  // never somebody else's

  auto rec_0900 = StepThrough(r, On(s, "08:16") + seconds(10), On(s, "09:00") + seconds(20));
  EXPECT_EQ(rec_0900.source, ReplayedSite::Source::kRecorded);
  EXPECT_FALSE(rec_0900.state.mains_ok);
  EXPECT_DOUBLE_EQ(rec_0900.state.voltage_v, 49.0 - 0.01 * 30);  // the 09:00 sample
  EXPECT_DOUBLE_EQ(rec_0900.state.current_a, 50);

  // Their generator: not shown; the drill's battery carries on discharging.
  auto theirs = StepThrough(r, On(s, "09:00") + seconds(40), On(s, "09:40"));
  EXPECT_EQ(theirs.source, ReplayedSite::Source::kSimulated);
  EXPECT_EQ(r.simulated_from(), On(s, "09:29") + seconds(30));
  EXPECT_NE(r.basis().find("recorded SoC"), std::string::npos) << r.basis();
  EXPECT_FALSE(theirs.state.generator_running);
  EXPECT_FALSE(theirs.state.mains_ok);
  EXPECT_GT(theirs.state.current_a, 1);
  EXPECT_LT(theirs.state.soc_pct, 100 - 0.2 * 59);  // continued from the recorded 88 %

  // Ours at 09:45: generator running, battery charging.
  auto ours = StepThrough(r, On(s, "09:40") + seconds(10), On(s, "09:50"), On(s, "09:45"));
  EXPECT_TRUE(ours.state.generator_running);
  EXPECT_LT(ours.state.current_a, 0);
  EXPECT_EQ(r.empty_at(), std::nullopt);
}

TEST(DrillReplayTest, ReplayedSiteIsDownFromTheRecordedEndVoltageUnlessOursCameFirst) {
  scenario::Scenario s = Wuzhai();
  const scenario::Site& site = *s.FindSite("WZ-01");
  auto rec = Outage("WZ-01", On(s, "08:10"), On(s, "08:30"), On(s, "09:30"));
  for (auto& k : rec) {
    if (At(k) >= On(s, "08:50")) k.voltage_v = 43.2, k.lvd_open = true, k.current_a = 0;
    if (At(k) > On(s, "09:00") && At(k) < On(s, "09:08")) k.t_ms = -1;  // silent
  }
  std::erase_if(rec, [](const Sample& k) { return k.t_ms < 0; });
  {
    ReplayedSite r(BuildTrack(rec, site), site);
    auto down = StepThrough(r, On(s, "08:10"), On(s, "08:55"));
    EXPECT_EQ(r.empty_at(), On(s, "08:49") + seconds(30));
    EXPECT_TRUE(down.state.lvd_open);
    EXPECT_EQ(StepThrough(r, On(s, "08:55") + seconds(10), On(s, "09:04")).source,
              ReplayedSite::Source::kSilent);
    // The recording ends with the site down: its continuation is an empty battery.
    auto after = StepThrough(r, On(s, "09:04") + seconds(10), On(s, "09:40"));
    EXPECT_EQ(after.source, ReplayedSite::Source::kSimulated);
    EXPECT_TRUE(after.state.lvd_open);
    EXPECT_DOUBLE_EQ(after.state.current_a, 0);
    EXPECT_NE(r.basis().find("empty"), std::string::npos) << r.basis();
    // Ours at 10:00: carried, generator running, LVD closed.
    auto carried = StepThrough(r, On(s, "09:40") + seconds(10), On(s, "10:05"), On(s, "10:00"));
    EXPECT_TRUE(carried.state.generator_running);
    EXPECT_FALSE(carried.state.lvd_open);
    EXPECT_EQ(r.empty_at(), On(s, "08:49") + seconds(30));  // down from then to 10:00
  }
  {
    ReplayedSite r(BuildTrack(rec, site), site);
    auto ours = StepThrough(r, On(s, "08:10"), On(s, "09:20"), On(s, "08:45"));
    EXPECT_EQ(r.empty_at(), std::nullopt);  // our generator was there at 08:45
    EXPECT_EQ(ours.source, ReplayedSite::Source::kSimulated);
    EXPECT_TRUE(ours.state.generator_running);
    EXPECT_FALSE(ours.state.lvd_open);
  }
}

TEST(DrillReplayTest, RecordingEndingOnBatteryContinuesToEmpty) {
  scenario::Scenario s = Wuzhai();
  const scenario::Site& site = *s.FindSite("WZ-01");
  // Ends at 09:00 after 30 min at SoC falling 2 %/min: 40 % left.
  auto rec = Outage("WZ-01", On(s, "08:10"), On(s, "08:30"), On(s, "09:00"), 50, 2.0);
  ReplayedSite r(BuildTrack(rec, site), site);
  StepThrough(r, On(s, "08:10"), On(s, "09:00") + seconds(10));
  EXPECT_EQ(r.simulated_from(), On(s, "09:00"));
  ASSERT_FALSE(r.empty_at());
  StepThrough(r, On(s, "09:00") + seconds(20), On(s, "14:00"));
  ASSERT_TRUE(r.empty_at());
  const double expect =
      30 + sim::BatterySim::Resume(*site.battery, site.load_w, 0.6 * 273, false).MinutesToEmpty();
  EXPECT_NEAR(core::ToMinutes(*r.empty_at() - On(s, "08:30")), expect, 0.5);
  // Counted from the recorded failure, shown from 08:29.
  EXPECT_EQ(r.track().mains_fail_at, On(s, "08:29"));
  EXPECT_NEAR(*RecordedRuntimeMin(r.track(), site), expect + 1, 0.5);
}

}  // namespace
}  // namespace sitepower::drill
