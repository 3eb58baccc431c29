#include "app/config.hpp"

#include <gtest/gtest.h>

namespace sitepower::app {
namespace {

const char* kGood = R"(
name: test-region
listen: {grpc: "127.0.0.1:0", http: "127.0.0.1:0"}
store: /tmp/x.db
poll: {interval_ms: 500, mains_fail_confirm: 3, coalesce_ms: 5}
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
  EXPECT_EQ(c->poll.coalesce_ms, 5);
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

const char* kBuses = R"(
sites:
  - id: R1
    location: [38.9, 111.8]
    load_w: 1000
    controller:
      transport: rtu
      unit: 3
      serial: {device: /dev/ttyUSB0, baud: 19200, parity: E, data_bits: 8, stop_bits: 1}
  - id: R2
    location: [38.9, 111.8]
    load_w: 1000
    controller: {transport: rtu, unit: 4, map: sunspec-802, serial: {device: /dev/ttyUSB0, baud: 19200, parity: E}}
  - id: G1
    location: [38.9, 111.8]
    load_w: 1000
    controller: {transport: rtu_over_tcp, host: 10.0.0.5, port: 4001, serial: {baud: 9600, stop_bits: 2, settle_ms: 80, backoff_min_ms: 500, backoff_max_ms: 60000}}
  - id: T1
    location: [38.9, 111.8]
    load_w: 1000
    controller: {transport: tcp, host: 10.0.0.6, unit: 0, in_flight: 16}
)";

TEST(ConfigTest, ControllerTransportsAndSerialLines) {
  auto c = LoadConfigString(kBuses, "buses.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const auto& r1 = c->sites[0].controller;
  EXPECT_EQ(r1.transport, ControllerTransport::kRtu);
  EXPECT_EQ(r1.unit, 3);
  EXPECT_EQ(r1.serial.device, "/dev/ttyUSB0");
  EXPECT_EQ(r1.serial.baud, 19200);
  EXPECT_EQ(r1.serial.parity, 'E');
  EXPECT_EQ(r1.serial.data_bits, 8);
  EXPECT_EQ(r1.serial.stop_bits, 1);
  EXPECT_TRUE(r1.host.empty());
  const auto& r2 = c->sites[1].controller;
  EXPECT_EQ(r2.serial.stop_bits, 1);  // defaults
  EXPECT_EQ(r2.serial.data_bits, 8);
  const auto& g1 = c->sites[2].controller;
  EXPECT_EQ(g1.transport, ControllerTransport::kRtuOverTcp);
  EXPECT_EQ(g1.host, "10.0.0.5");
  EXPECT_EQ(g1.port, 4001);
  EXPECT_EQ(g1.unit, 1);
  EXPECT_EQ(g1.serial.baud, 9600);
  EXPECT_EQ(g1.serial.parity, 'N');
  EXPECT_EQ(g1.serial.stop_bits, 2);
  EXPECT_TRUE(g1.serial.device.empty());
  EXPECT_EQ(g1.serial.settle_ms, 80);
  EXPECT_EQ(g1.serial.backoff_min_ms, 500);
  EXPECT_EQ(g1.serial.backoff_max_ms, 60000);
  EXPECT_EQ(r1.serial.settle_ms, 50);  // defaults
  EXPECT_EQ(r1.serial.backoff_min_ms, 250);
  EXPECT_EQ(r1.serial.backoff_max_ms, 30000);
  EXPECT_EQ(r1.in_flight, 0);  // the map's
  EXPECT_EQ(c->sites[3].controller.transport, ControllerTransport::kTcp);
  EXPECT_EQ(c->sites[3].controller.unit, 0);
  EXPECT_EQ(c->sites[3].controller.in_flight, 16);
  // The default stays Modbus TCP.
  auto good = LoadConfigString(kGood, "good.yaml");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->sites[0].controller.transport, ControllerTransport::kTcp);
}

TEST(ConfigTest, BadTransportAndSerialKeysNameFileLineAndKey) {
  std::string bad = kBuses;
  auto replace = [&bad](const std::string& from, const std::string& to) {
    auto at = bad.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    bad.replace(at, from.size(), to);
  };
  replace("baud: 19200, parity: E, data_bits: 8, stop_bits: 1",
          "baud: 12345, parity: X, data_bits: 7, stop_bits: 3");
  replace(
      "transport: rtu, unit: 4, map: sunspec-802, serial: {device: /dev/ttyUSB0, baud: 19200, "
      "parity: E}",
      "transport: rtu, unit: 0, host: 10.0.0.9, in_flight: 4");
  replace(
      "serial: {baud: 9600, stop_bits: 2, settle_ms: 80, backoff_min_ms: 500, backoff_max_ms: "
      "60000}",
      "serial: {device: /dev/ttyS0, bauds: 9600, backoff_min_ms: 900, backoff_max_ms: 800}");
  replace("transport: tcp, host: 10.0.0.6, unit: 0", "transport: rs485, host: 10.0.0.6");
  auto c = LoadConfigString(bad, "buses.yaml");
  ASSERT_FALSE(c.ok());
  const std::string& m = c.status().message();
  for (const char* want : {
           "buses.yaml:9: sites[0].controller.serial.baud: expected one of 300, 600, 1200, 2400, "
           "4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, got 12345",
           "buses.yaml:9: sites[0].controller.serial.parity: expected N|E|O, got 'X'",
           "buses.yaml:9: sites[0].controller.serial.data_bits: expected 8 (RTU frames carry "
           "8-bit bytes; 7 is Modbus ASCII), got 7",
           "buses.yaml:9: sites[0].controller.serial.stop_bits: value 3 out of range",
           "buses.yaml:13: sites[1].controller.unit: value 0 out of range",
           "buses.yaml:13: sites[1].controller.host: not used with transport rtu",
           "sites[1].controller.serial: required key is missing",
           "buses.yaml:17: sites[2].controller.serial.device: not used with transport "
           "rtu_over_tcp",
           "buses.yaml:17: sites[2].controller.serial.bauds: unknown key",
           "buses.yaml:17: sites[2].controller.serial.backoff_max_ms: below backoff_min_ms (900)",
           "buses.yaml:13: sites[1].controller.in_flight: only for transport tcp",
           "buses.yaml:21: sites[3].controller.transport: expected tcp|rtu_over_tcp|rtu, got "
           "'rs485'",
       })
    EXPECT_NE(m.find(want), std::string::npos) << want << "\n---\n" << m;
}

TEST(ConfigTest, SerialKeysOnlyWhereThereIsALine) {
  std::string bad = kBuses;
  bad.replace(bad.find("transport: tcp, host: 10.0.0.6, unit: 0"), 39,
              "transport: tcp, host: 10.0.0.6, serial: {baud: 9600}");
  auto c = LoadConfigString(bad, "x.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(
                "x.yaml:21: sites[3].controller.serial: only for transport rtu or rtu_over_tcp"),
            std::string::npos)
      << c.status().message();
}

// One wire, one speed: sites on the same serial device (or gateway) agree.
TEST(ConfigTest, SitesOnOneBusAgreeOnItsLine) {
  std::string bad = kBuses;
  bad.replace(bad.find("baud: 19200, parity: E}}"), 24, "baud: 9600, parity: E}}");
  auto c = LoadConfigString(bad, "x.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("x.yaml:10: sites.R2.controller.serial: /dev/ttyUSB0 is "
                                      "polled at 19200 8E1 by site R1, here at 9600 8E1"),
            std::string::npos)
      << c.status().message();
}

// YD/T 1363 controllers: protocol ydt1363 with an ADR instead of a unit id.
TEST(ConfigTest, YdtControllersTakeAdr) {
  const std::string base = R"(
sites:
  - id: Y1
    location: [38.9, 111.8]
    load_w: 1000
    controller: {protocol: ydt1363, host: 10.0.0.7, port: 4001, adr: 0}
  - id: Y2
    location: [38.9, 111.8]
    load_w: 1000
    controller: {protocol: ydt1363, transport: rtu, adr: 2, map: ydt-pylontech-lfp, serial: {device: /dev/ttyS1}}
)";
  auto c = LoadConfigString(base, "ydt.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->sites[0].controller.protocol, "ydt1363");
  EXPECT_EQ(c->sites[0].controller.unit, 0);  // ADR 0 is a device, not a broadcast
  EXPECT_EQ(c->sites[0].controller.map, "ydt-dc-power");
  EXPECT_EQ(c->sites[1].controller.unit, 2);
  EXPECT_EQ(c->sites[1].controller.transport, ControllerTransport::kRtu);
  std::string text = base;
  text.replace(text.find("adr: 0"), 6, "unit: 1");
  text.replace(text.find("protocol: ydt1363, transport"), 17, "protocol: snmp");
  auto bad = LoadConfigString(text, "ydt.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("ydt.yaml:6: sites[0].controller.unit: protocol ydt1363 "
                                        "takes adr, not unit"),
            std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("sites[1].controller.protocol: expected modbus|ydt1363"),
            std::string::npos)
      << bad.status().message();
  auto modbus = LoadConfigString(kGood, "good.yaml");
  ASSERT_TRUE(modbus.ok());
  EXPECT_EQ(modbus->sites[0].controller.protocol, "modbus");  // the default
}

}  // namespace
}  // namespace sitepower::app

namespace sitepower::app {
namespace {

// Operators are named in the audit log: each NOC token names one, once.
// /metrics access is one of three words.
TEST(ConfigTest, OperatorTokensAndMetricsAccess) {
  std::string ok = std::string(kGood) +
                   "noc_tokens:\n"
                   "  - {name: alice, sha256: " +
                   std::string(64, 'a') +
                   "}\n"
                   "  - {name: bob, sha256: " +
                   std::string(64, 'b') +
                   "}\n"
                   "metrics: {access: token}\n";
  auto c = LoadConfigString(ok, "ops.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->noc_tokens.size(), 2u);
  EXPECT_EQ(c->noc_tokens[1].name, "bob");
  EXPECT_EQ(c->metrics_access, "token");
  EXPECT_EQ(LoadConfigString(kGood, "x.yaml")->metrics_access, "loopback");

  std::string bad = std::string(kGood) +
                    "noc_tokens:\n"
                    "  - {name: alice, sha256: " +
                    std::string(64, 'a') +
                    "}\n"
                    "  - {name: alice, sha256: " +
                    std::string(64, 'b') +
                    "}\n"
                    "metrics: {access: everyone}\n";
  auto e = LoadConfigString(bad, "ops.yaml");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("noc_tokens.alice: operator name used twice"),
            std::string::npos)
      << e.status().message();
  EXPECT_NE(e.status().message().find("metrics.access: expected loopback, token or open"),
            std::string::npos)
      << e.status().message();
}

}  // namespace
}  // namespace sitepower::app
