// End-to-end: `sitepower-drill --record` and `--replay` with the real daemon,
// real Modbus (the simulated controllers serving the recording) and real gRPC
// crews on loopback.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "e2e_util.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <string>

#include "recording/recording.hpp"

namespace {

using json = nlohmann::json;
namespace recording = sitepower::recording;
namespace fs = std::filesystem;

const std::string kBin = SITEPOWER_BIN_DIR;
const std::string kWuzhai = SITEPOWER_SHARED_DIR "/scenarios/wuzhai-2020-03-08.yaml";
// The drill polls every scenario minute on battery and every two on mains,
// at any speed; its loop updates the controllers every 20 ms of wall time.
constexpr double kSpeed = 400;
constexpr double kPollOnMainsS = 120;
constexpr double kDrillTickS = 0.020 * kSpeed;

using sitepower::e2e::Exec;
using sitepower::e2e::ReadJson;
using sitepower::e2e::TempDir;
using Outcome = sitepower::e2e::Result;

// Seconds since the epoch of a report time; every report time carries the
// scenario's offset (+08:00), which is therefore left out.
double Seconds(const json& iso) {
  std::tm tm{};
  std::istringstream in(iso.get<std::string>());
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  EXPECT_FALSE(in.fail()) << iso;
  return static_cast<double>(timegm(&tm));
}

void ExpectNoneDown(const json& report, const std::string& out) {
  ASSERT_TRUE(report.is_object()) << out;
  EXPECT_EQ(report["sites_down"]["vip"], 0) << out;
  EXPECT_EQ(report["sites_down"]["key"], 0) << out;
  EXPECT_EQ(report["sites_down"]["standard"], 0) << out;
  EXPECT_EQ(report["weighted_down_min"], 0) << out;
  EXPECT_EQ(report["crew_streams"]["gaps"], 0);
  EXPECT_EQ(report["crew_streams"]["duplicates"], 0);
}

// The Wuzhai drill recorded, then that recording replayed: the replayed
// daemon sees each site's mains failure when the recording daemon did (it
// confirms it within one poll interval of it; the report's mains_fail_at,
// taken from the recording, is between the recording daemon's last poll on
// mains and its first on battery), the batteries' runtimes are the ones of
// the recorded run, and nobody goes down.
TEST(DrillReplayE2eTest, WuzhaiRecordedThenReplayed) {
  const std::string dir = TempDir("replay-wz");
  const std::string rec = dir + "/wuzhai.rec";
  const std::string speed = " --speed " + std::to_string(static_cast<int>(kSpeed));
  Outcome first = Exec(kBin + "/sitepower-drill " + kWuzhai + speed + " --quiet --record " + rec +
                       " --report " + dir + "/recorded.json --keep-dir " + dir + "/run1");
  ASSERT_EQ(first.code, 0) << first.out;
  json recorded = ReadJson(dir + "/recorded.json");
  ExpectNoneDown(recorded, first.out);
  ASSERT_TRUE(fs::exists(rec));
  ASSERT_GT(fs::file_size(rec), 18u * 50 * 10);  // 18 sites, 2 h and more, ~14 B a sample

  Outcome again = Exec(kBin + "/sitepower-drill " + kWuzhai + speed + " --quiet --replay " + rec +
                       " --report " + dir + "/replayed.json --keep-dir " + dir + "/run2");
  ASSERT_EQ(again.code, 0) << again.out;
  json replayed = ReadJson(dir + "/replayed.json");
  ExpectNoneDown(replayed, again.out);
  ASSERT_TRUE(replayed.contains("replay")) << again.out;
  const json& rp = replayed["replay"];
  EXPECT_EQ(rp["file"], rec);
  EXPECT_GT(rp["samples"].get<int>(), 18 * 100);
  EXPECT_EQ(rp["sites_replayed"].size(), 18u);
  EXPECT_TRUE(rp["sites_simulated"].empty());
  EXPECT_TRUE(rp["unknown_sites_skipped"].empty());
  EXPECT_EQ(rp["time_shift_min"], 0);
  EXPECT_TRUE(rp["damaged"].is_null());
  EXPECT_NE(again.out.find("replay: simulated (the scenario's events and battery): -"),
            std::string::npos)
      << again.out;

  std::ifstream log(dir + "/run1/sitepowerd.log");
  const std::string recorded_log((std::istreambuf_iterator<char>(log)), {});
  double max_confirm_s = 0, max_fail_s = 0, max_runtime = 0;
  for (const auto& [id, r] : recorded["sites"].items()) {
    SCOPED_TRACE(id);
    const json& p = replayed["sites"][id];
    EXPECT_EQ(p["source"], "recording");
    ASSERT_TRUE(r.contains("daemon_mains_fail_at")) << first.out;
    ASSERT_TRUE(p.contains("daemon_mains_fail_at")) << again.out;
    const double recorded_confirm = Seconds(r["daemon_mains_fail_at"]);
    const double confirm_diff = Seconds(p["daemon_mains_fail_at"]) - recorded_confirm;
    EXPECT_LE(std::abs(confirm_diff), kPollOnMainsS + kDrillTickS);
    max_confirm_s = std::max(max_confirm_s, std::abs(confirm_diff));
    // 08:30 in the recorded run; from the recording: halfway between the
    // recording daemon's last poll on mains and its first on battery.
    const double fail_diff = Seconds(p["mains_fail_at"]) - Seconds(r["mains_fail_at"]);
    EXPECT_LE(std::abs(fail_diff), kPollOnMainsS);
    EXPECT_LE(Seconds(p["mains_fail_at"]), recorded_confirm);
    EXPECT_GE(Seconds(p["mains_fail_at"]), recorded_confirm - kPollOnMainsS);
    max_fail_s = std::max(max_fail_s, std::abs(fail_diff));
    // The same batteries: the replay's runtime (to the recording's last
    // discharging sample, then the drill's battery resumed from its SoC).
    const double rel = std::abs(p["runtime_min"].get<double>() - r["runtime_min"].get<double>()) /
                       r["runtime_min"].get<double>();
    EXPECT_LT(rel, 0.05) << p["runtime_min"] << " vs " << r["runtime_min"];
    max_runtime = std::max(max_runtime, rel);
    EXPECT_TRUE(p.contains("generator_running_at"));
    // Nothing failed in the recorded drill: no silence to replay, unless the
    // recording daemon itself saw this site stale.
    if (recorded_log.find("INFO stale site=" + id + " ") == std::string::npos) {
      EXPECT_EQ(rp["sites"][id]["holes"], 0);
    }
  }
  std::printf(
      "replay vs recorded: daemon confirmation max %.0f s apart, mains_fail_at max %.0f s, "
      "runtime max %.1f %%\n",
      max_confirm_s, max_fail_s, 100 * max_runtime);
}

// A recording of another day (a real outage) moved to the scenario's 08:30
// with --replay-at: WZ-06's battery reaches end voltage 20 min after mains
// failed, sooner than any crew can reach it (hook-up alone is 15 min); the
// drill reports it down from then until our generator, with runtime_min from
// the recording. The other 17 sites keep the scenario's events and
// batteries. The file also has a site the scenario does not know and a
// damaged tail: both are named, and what came before the damage is replayed.
TEST(DrillReplayE2eTest, ShiftedRecordingDrainsASiteBeforeAnyCrewCanComeAndDamageIsNamed) {
  const std::string dir = TempDir("replay-lvd");
  const std::string rec = dir + "/outage-2021-11-02.rec";
  const int64_t fail_ms = 1635830400000;  // 2021-11-02T13:20:00+08:00
  std::string bytes;
  recording::Writer writer;
  for (int min = -20; min <= 60; ++min) {
    recording::Sample k;
    k.site = "WZ-06";
    k.t_ms = fail_ms + int64_t{min} * 60000;
    const bool lost = min >= 0;
    const bool lvd = min >= 20;
    k.mains_ok = !lost;
    k.voltage_v = !lost ? 53.5 : (lvd ? 43.2 : 49.0 - 5.8 * min / 20.0);
    k.current_a = !lost || lvd ? 0 : 52;
    k.temp_c = 5;
    k.soc_pct = 100 - (lost ? std::min(min, 20) * 0.9 : 0);
    k.generator_running = false;
    k.lvd_open = lvd;
    writer.Add(k, &bytes);
    if (min == 5) {
      recording::Sample stranger = k;
      stranger.site = "XX-99";
      writer.Add(stranger, &bytes);
    }
  }
  const size_t valid = bytes.size();
  bytes += "D\x07";  // a sample of an undefined site, cut short: the damaged tail
  std::ofstream(rec, std::ios::binary) << bytes;

  Outcome r =
      Exec(kBin + "/sitepower-drill " + kWuzhai + " --speed " +
           std::to_string(static_cast<int>(kSpeed)) + " --quiet --replay " + rec +
           " --replay-at 08:30 --report " + dir + "/report.json --keep-dir " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("damaged at byte " + std::to_string(valid) + ":"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("recorded site XX-99 is not in the scenario: skipped"), std::string::npos)
      << r.out;
  json report = ReadJson(dir + "/report.json");
  ASSERT_TRUE(report.is_object()) << r.out;
  const json& rp = report["replay"];
  EXPECT_EQ(rp["sites_replayed"], json::array({"WZ-06"}));
  EXPECT_EQ(rp["sites_simulated"].size(), 17u);
  EXPECT_EQ(rp["unknown_sites_skipped"], json::array({"XX-99"}));
  EXPECT_EQ(rp["samples"], 81);
  EXPECT_NE(rp["damaged"].get<std::string>().find("byte " + std::to_string(valid)),
            std::string::npos);
  // The first mains failure (shown from halfway after the last sample on
  // mains: 13:19:30) lands at 08:30.
  const double shift_min = (1583627400000.0 - (fail_ms - 30000)) / 60000.0;
  EXPECT_NEAR(rp["time_shift_min"].get<double>(), shift_min, 1e-6);

  const json& site = report["sites"]["WZ-06"];
  EXPECT_EQ(site["source"], "recording");
  EXPECT_EQ(site["mains_fail_at"], "2020-03-08T08:30:00+08:00");
  EXPECT_EQ(rp["sites"]["WZ-06"]["recorded_empty_at"], "2020-03-08T08:50:00+08:00");
  EXPECT_NEAR(site["runtime_min"].get<double>(), 20.0, 0.05);
  ASSERT_TRUE(site.contains("generator_running_at")) << r.out;  // a crew came, late
  const double down_from = Seconds(json("2020-03-08T08:50:00"));
  const double generator = Seconds(site["generator_running_at"]);
  EXPECT_GT(generator, down_from);
  EXPECT_NEAR(site["down_min"].get<double>(), (generator - down_from) / 60, 0.1);
  EXPECT_GE(report["sites_down"]["standard"].get<int>(), 1);
  // The daemon saw it fail when the shifted recording says: at its next poll
  // (this failure comes with the scenario's 17 others, whose plans may delay
  // that poll: two intervals at most).
  ASSERT_TRUE(site.contains("daemon_mains_fail_at"));
  const double confirm = Seconds(site["daemon_mains_fail_at"]) - Seconds(site["mains_fail_at"]);
  EXPECT_GE(confirm, 0);
  EXPECT_LE(confirm, 2 * kPollOnMainsS);
  // Everyone else: the scenario's own 08:30, simulated batteries, all carried.
  for (const auto& [id, s] : report["sites"].items()) {
    if (id == "WZ-06") continue;
    SCOPED_TRACE(id);
    EXPECT_EQ(s["source"], "scenario");
    EXPECT_EQ(s["mains_fail_at"], "2020-03-08T08:30:00+08:00");
    EXPECT_EQ(s["down_min"], 0) << r.out;
  }
}

// Bad input is a clear error before anything starts (exit 2).
TEST(DrillReplayE2eTest, BadRecordingsAndOptionsAreClearErrors) {
  const std::string dir = TempDir("replay-bad");
  const std::string drill = kBin + "/sitepower-drill " + kWuzhai + " --speed 300 ";
  Outcome missing = Exec(drill + "--replay " + dir + "/nope.rec");
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.out.find(dir + "/nope.rec: cannot open the recording"), std::string::npos)
      << missing.out;

  std::ofstream(dir + "/text.rec") << "t_s,site,voltage_v\n1,WZ-01,53.5\n";
  Outcome text = Exec(drill + "--replay " + dir + "/text.rec");
  EXPECT_EQ(text.code, 2);
  EXPECT_NE(text.out.find("byte 0: not a sitepower recording"), std::string::npos) << text.out;

  std::string bytes;
  recording::Writer w;
  recording::Sample k;
  k.site = "ZZ-01";
  k.t_ms = 1583627400000;
  w.Add(k, &bytes);
  k.site = "ZZ-02";
  w.Add(k, &bytes);
  std::ofstream(dir + "/other.rec", std::ios::binary) << bytes;
  Outcome other = Exec(drill + "--replay " + dir + "/other.rec");
  EXPECT_EQ(other.code, 2);
  EXPECT_NE(other.out.find("no recorded site is in scenario wuzhai-2020-03-08 (recorded: ZZ-01, "
                           "ZZ-02)"),
            std::string::npos)
      << other.out;

  Outcome same = Exec(drill + "--replay " + dir + "/other.rec --record " + dir + "/other.rec");
  EXPECT_EQ(same.code, 2);
  EXPECT_NE(same.out.find("is the recording being replayed"), std::string::npos) << same.out;
  EXPECT_TRUE(fs::exists(dir + "/other.rec"));  // not replaced

  Outcome at = Exec(drill + "--replay-at 08:30");
  EXPECT_EQ(at.code, 2);
  EXPECT_NE(at.out.find("need --replay FILE"), std::string::npos) << at.out;
  Outcome bad_at = Exec(drill + "--replay " + dir + "/other.rec --replay-at 8h30");
  EXPECT_EQ(bad_at.code, 2);
  EXPECT_NE(bad_at.out.find("--replay-at 8h30: expected HH:MM"), std::string::npos) << bad_at.out;
}

}  // namespace
