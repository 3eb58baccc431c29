// End-to-end: the Wuzhai outage with every site on YD/T 1363.3 (issue 20):
// fifteen plants speak 40H/42H (ydt-dc-power: mains from the AC phase
// voltages, battery from the DC distribution) and three have only an LFP
// pack's BMS (ydt-pylontech-lfp, 46H: no mains point, mains from the battery
// current). Each site's simulated device sits behind its own serial-to-TCP
// converter; the daemon polls them through the same maps. The outcome must be
// the Modbus drill's: nobody down.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

#include "e2e_util.hpp"

namespace {

using json = nlohmann::json;
using sitepower::e2e::Exec;
using sitepower::e2e::ReadJson;
using sitepower::e2e::Result;
using sitepower::e2e::TempDir;

const std::string kBin = SITEPOWER_BIN_DIR;
const std::string kScenarios = SITEPOWER_SHARED_DIR "/scenarios/";

// The seed's scenario with every controller on YD/T 1363.
std::string YdtVariant(int* replaced) {
  std::ifstream in(kScenarios + "wuzhai-2020-03-08.yaml");
  std::string line, yaml;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.find("controller: {map: sunspec-802") != std::string::npos) {
      ++n;
      line = n <= 15 ? "    controller: {protocol: ydt1363, map: ydt-dc-power, adr: 1}"
                     : "    controller: {protocol: ydt1363, map: ydt-pylontech-lfp, adr: 2}";
    }
    if (line.rfind("name: wuzhai-2020-03-08", 0) == 0) line = "name: wuzhai-ydt1363";
    yaml += line + "\n";
  }
  *replaced = n;
  return yaml;
}

TEST(DrillYdtE2eTest, WuzhaiOnYdt1363KeepsEverySiteUp) {
  std::string dir = TempDir("ydt");
  int n = 0;
  std::ofstream(dir + "/ydt.yaml") << YdtVariant(&n);
  ASSERT_EQ(n, 18);
  Result r = Exec(kBin + "/sitepower-drill " + dir + "/ydt.yaml --speed 300 --report " + dir +
                  "/report.json --keep-dir " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.out;
  const json report = ReadJson(dir + "/report.json");
  ASSERT_TRUE(report.is_object()) << r.out;
  EXPECT_EQ(report["sites_down"]["vip"], 0) << r.out;
  EXPECT_EQ(report["sites_down"]["key"], 0) << r.out;
  EXPECT_EQ(report["sites_down"]["standard"], 0) << r.out;
  EXPECT_EQ(report["weighted_down_min"], 0) << r.out;
  EXPECT_EQ(report["sites"].size(), 18u);
  int n_seen = 0;
  for (const auto& [id, site] : report["sites"].items()) {
    EXPECT_TRUE(site.contains("generator_running_at")) << id;
    // The daemon saw every failure through its site's YD/T map, within minutes.
    ASSERT_TRUE(site.contains("daemon_mains_fail_at")) << id;
    EXPECT_LE(site["daemon_mains_fail_at"].get<std::string>(), "2020-03-08T08:36:00+08:00") << id;
    ++n_seen;
  }
  EXPECT_EQ(n_seen, 18);
  std::ifstream log(dir + "/run/sitepowerd.log");
  std::string text((std::istreambuf_iterator<char>(log)), {});
  EXPECT_EQ(text.find("mains_restored"), std::string::npos);  // mains come back at 17:30 only
  EXPECT_EQ(text.find("implausible"), std::string::npos);
  // Every device was added to the poller (a refused one is logged as "ERROR device").
  EXPECT_EQ(text.find("ERROR device"), std::string::npos);
}

}  // namespace
