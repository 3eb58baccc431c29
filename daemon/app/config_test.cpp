#include "app/config.hpp"

#include <gtest/gtest.h>

namespace sitepower::app {
namespace {

const char* kGood = R"(
name: test-region
listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0"}
store: /tmp/x.db
poll: {interval_ms: 500, mains_fail_confirm: 3}
sites:
  - id: S1
    location: [38.9, 111.8]
    tier: vip
    feeds: [S2]
    load_w: 2000
    battery: {chemistry: vrla, cells: 24, capacity_ah: 300, rated_hours: 10, strings: 1,
              soh: 0.9, soc: 1.0, temp_c: 10, end_v_per_cell: 1.8}
    controller: {host: 127.0.0.1, port: 1502, unit: 1, map: sunspec-802}
  - id: S2
    location: [38.8, 111.7]
    load_w: 1500
    controller: {host: 127.0.0.1, port: 1503}
crews:
  - id: A1
    location: [38.9, 111.8]
    generators: 3
    token_sha256: 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b
)";

TEST(ConfigTest, LoadsAGoodConfig) {
  auto c = LoadConfigString(kGood, "good.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->name, "test-region");
  EXPECT_EQ(c->sites.size(), 2u);
  EXPECT_EQ(c->sites[0].tier, core::Tier::kVip);
  ASSERT_TRUE(c->sites[0].battery.has_value());
  EXPECT_EQ(c->sites[0].battery->cells, 24);
  EXPECT_DOUBLE_EQ(c->sites[0].battery->soh, 0.9);
  EXPECT_EQ(c->sites[1].controller.map, "sunspec-802");
  EXPECT_EQ(c->poll.mains_fail_confirm, 3);
  EXPECT_EQ(c->poll.interval_ms, 500);
  EXPECT_EQ(c->crews[0].generators, 3);
}

TEST(ConfigTest, ExampleConfigIsValid) {
  auto c = LoadConfigFile(SITEPOWER_SOURCE_DIR "/config/sitepowerd.example.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->sites.empty());
}

// Every error names file:line and the key path, and all of them are reported.
TEST(ConfigTest, ErrorsNameFileLineAndKey) {
  std::string bad = kGood;
  bad.replace(bad.find("tier: vip"), 9, "tier: gold");
  bad.replace(bad.find("generators: 3"), 13, "generators: many");
  bad.replace(bad.find("port: 1503"), 10, "prot: 1503");
  auto c = LoadConfigString(bad, "bad.yaml");
  ASSERT_FALSE(c.ok());
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("bad.yaml:9: sites[0].tier: expected vip|key|standard, got 'gold'"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("crews[0].generators: expected an integer, got 'many'"), std::string::npos) << m;
  EXPECT_NE(m.find("sites[1].controller.prot: unknown key"), std::string::npos) << m;
}

TEST(ConfigTest, BatteryDatasheetTable) {
  std::string good = kGood;
  good.replace(good.find("end_v_per_cell: 1.8}"), 20,
               "end_v_per_cell: 1.8,\n              table: {end_v_per_cell: 1.80, mode: current, "
               "rows: [[128.7, 60], [76.2, 120], [19.0, 600]]}}");
  auto c = LoadConfigString(good, "table.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const auto& b = *c->sites[0].battery;
  ASSERT_EQ(b.table.size(), 3u);
  EXPECT_DOUBLE_EQ(b.table[1].first, 76.2);
  EXPECT_DOUBLE_EQ(b.table_end_v_per_cell, 1.80);
  EXPECT_FALSE(b.table_is_power);

  std::string bad = good;
  bad.replace(bad.find("[76.2, 120]"), 11, "[76.2, -1]");
  bad.replace(bad.find("mode: current"), 13, "mode: watts");
  auto e = LoadConfigString(bad, "table.yaml");
  ASSERT_FALSE(e.ok());
  const std::string& m = e.status().message();
  EXPECT_NE(m.find("sites[0].battery.table.rows[1]: expected [load, minutes] with both > 0"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("sites[0].battery.table.mode: expected current|power, got 'watts'"),
            std::string::npos)
      << m;
}

TEST(ConfigTest, CrossChecks) {
  std::string bad = kGood;
  bad.replace(bad.find("feeds: [S2]"), 11, "feeds: [S9]");
  bad.replace(bad.find("id: S2"), 6, "id: S1");
  auto c = LoadConfigString(bad, "x.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("duplicate site id 'S1'"), std::string::npos);
  EXPECT_NE(c.status().message().find("unknown site 'S9'"), std::string::npos);
}

TEST(ConfigTest, FeedCycleRejected) {
  std::string bad = kGood;
  bad.replace(bad.find("    load_w: 1500"), 16, "    feeds: [S1]\n    load_w: 1500");
  auto c = LoadConfigString(bad, "x.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("feeds form a cycle"), std::string::npos)
      << c.status().message();
}

TEST(ConfigTest, BadTokenAndListen) {
  std::string bad = kGood;
  bad.replace(bad.find("grpc: \"127.0.0.1:0\""), 19, "grpc: \"localhost\"");
  bad.replace(bad.find("token_sha256: 2bb8"), 18, "token_sha256: XYZ8");
  auto c = LoadConfigString(bad, "x.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("listen.grpc: expected host:port"), std::string::npos);
  EXPECT_NE(c.status().message().find("token_sha256: expected 64 lower-case hex"),
            std::string::npos);
}

}  // namespace
}  // namespace sitepower::app
