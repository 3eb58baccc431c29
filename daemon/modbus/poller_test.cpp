// The poller against libmodbus servers (an independent peer) on loopback.
#include "modbus/poller.hpp"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <map>

#include "modbus/site_state.hpp"
#include "modbus/test_server.hpp"
#include "sim/controller_sim.hpp"

namespace sitepower::modbus {
namespace {

struct Collected {
  std::vector<std::pair<core::SiteId, Reading>> all;
  int Count(const core::SiteId& s, bool ok) const {
    int n = 0;
    for (const auto& [site, r] : all) n += (site == s && r.poll_ok == ok);
    return n;
  }
};

TEST(PollerTest, ReadsHealthyDevicesWhileBadOnesFail) {
  sim::ControllerFarm farm;
  std::string err;
  int good = farm.Add(&err), mute = farm.Add(&err), broken = farm.Add(&err), junk = farm.Add(&err);
  ASSERT_GE(junk, 0) << err;
  sim::ControllerState st;
  st.voltage_v = 48.12;
  st.current_a = 51.2;
  st.soc_pct = 77;
  st.temp_c = 4.5;
  st.mains_ok = false;
  farm.Set(good, st);
  farm.SetFault(mute, sim::Fault::kTimeout);
  farm.SetFault(broken, sim::Fault::kException);
  farm.SetFault(junk, sim::Fault::kGarbage);
  farm.Start();

  auto maps = MapRegistry::Load("");
  ASSERT_TRUE(maps.ok());
  boost::asio::io_context io;
  core::SystemClock clock;
  PollerOptions opts;
  opts.interval = core::Millis(40);
  opts.on_battery_interval = core::Millis(40);
  opts.timeout = core::Millis(300);
  Collected got;
  Poller poller(io, clock, *maps, opts,
                [&got](const core::SiteId& s, const Reading& r) { got.all.emplace_back(s, r); });
  ASSERT_TRUE(
      poller
          .AddDevice(DeviceSpec::Tcp("GOOD", "127.0.0.1", static_cast<uint16_t>(farm.port(good)), 1,
                                     "sunspec-802-plant"))
          .ok());
  ASSERT_TRUE(
      poller
          .AddDevice(DeviceSpec::Tcp("MUTE", "127.0.0.1", static_cast<uint16_t>(farm.port(mute)), 1,
                                     "sunspec-802-plant"))
          .ok());
  ASSERT_TRUE(
      poller
          .AddDevice(DeviceSpec::Tcp("EXC", "127.0.0.1", static_cast<uint16_t>(farm.port(broken)),
                                     1, "sunspec-802-plant"))
          .ok());
  ASSERT_TRUE(
      poller
          .AddDevice(DeviceSpec::Tcp("JUNK", "127.0.0.1", static_cast<uint16_t>(farm.port(junk)), 1,
                                     "sunspec-802-plant"))
          .ok());
  ASSERT_TRUE(poller.AddDevice(DeviceSpec::Tcp("DEAD", "127.0.0.1", 1, 1, "sunspec-802-plant"))
                  .ok());  // nothing listens
  EXPECT_FALSE(poller.AddDevice(DeviceSpec::Tcp("X", "127.0.0.1", 502, 1, "no-such-map")).ok());
  poller.Start();
  // Run until the mute device has failed twice: the healthy one must have been
  // read several times in between (a dead device never stalls the others).
  while (got.Count("MUTE", false) < 2) io.run_one();
  poller.Stop();
  io.run();

  EXPECT_GE(got.Count("GOOD", true), 3);
  EXPECT_EQ(got.Count("GOOD", false), 0);
  EXPECT_GE(got.Count("EXC", false), 1);
  EXPECT_GE(got.Count("JUNK", false), 1);
  EXPECT_GE(got.Count("DEAD", false), 1);
  for (const auto& [site, r] : got.all) {
    if (site == "GOOD") {
      EXPECT_NEAR(r.battery_voltage_v.value, 48.12, 1e-6);
      EXPECT_NEAR(r.battery_current_a.value, 51.2,
                  1e-6);  // discharge-positive after the map's invert
      EXPECT_NEAR(r.soc_pct.value, 77, 1e-9);
      EXPECT_NEAR(r.battery_temp_c.value, 4.5, 1e-9);
      EXPECT_EQ(r.mains_ok.value, 0);
    } else if (site == "MUTE") {
      EXPECT_NE(r.error.find("no answer within 300 ms"), std::string::npos) << r.error;
      EXPECT_NE(r.error.find("site MUTE"), std::string::npos);
    } else if (site == "EXC") {
      EXPECT_NE(r.error.find("exception 0x04"), std::string::npos) << r.error;
    } else if (site == "DEAD") {
      EXPECT_NE(r.error.find("connect"), std::string::npos) << r.error;
    }
  }
}

// A standard SunSpec 802 device: "SunS", model 1, model 802, the end marker
// and nothing else (holding 40000-40135; no discrete inputs, so libmodbus
// answers anything else with exception 02). 51.20 V, SoC 80 %, 40.0 A out
// of the battery (the wire says -40.0: + = into the battery).
testing::TestServer StandardSunSpecServer() {
  return testing::TestServer(
      40000, 136,
      [](modbus_mapping_t* m) {
        auto h = [m](int a, int v) { m->tab_registers[a - 40000] = static_cast<uint16_t>(v); };
        h(40000, 0x5375);
        h(40001, 0x6E53);
        h(40002, 1);
        h(40003, 66);
        h(40070, 802);
        h(40071, 62);
        h(40081, 80);
        h(40096, 0);
        h(40097, 0);
        h(40104, 5120);
        h(40114, -400);
        h(40126, 0);
        h(40129, -2);
        h(40131, -1);
        h(40134, 0xFFFF);
        h(40135, 0);
      },
      {}, /*input_bits=*/0);
}

struct Polled {
  std::vector<Reading> readings;
  std::vector<uint64_t> requests_after;  // the poller's requests sent when each came
};

Polled PollUntil(testing::TestServer& server, const std::string& map, PollerOptions opts,
                 size_t polls) {
  auto maps = MapRegistry::Load("");
  EXPECT_TRUE(maps.ok());
  boost::asio::io_context io;
  core::SystemClock clock;
  Polled got;
  Poller* self = nullptr;
  Poller poller(io, clock, *maps, opts, [&got, &self](const core::SiteId&, const Reading& r) {
    got.readings.push_back(r);
    got.requests_after.push_back(self->stats().requests);
  });
  self = &poller;
  EXPECT_TRUE(poller.AddDevice(DeviceSpec::Tcp("STD", "127.0.0.1", server.port(), 1, map)).ok());
  poller.Start();
  while (got.readings.size() < polls) io.run_one();
  poller.Stop();
  io.run();
  return got;
}

PollerOptions Fast() {
  PollerOptions opts;
  opts.interval = core::Millis(20);
  opts.on_battery_interval = core::Millis(20);
  opts.timeout = core::Millis(500);
  return opts;
}

TEST(PollerTest, TheBuiltInMapPollsAStandardSunSpecDevice) {
  auto server = StandardSunSpecServer();
  Polled got = PollUntil(server, "sunspec-802", Fast(), 3);
  SiteStateTracker tracker(2, 3);
  for (const Reading& r : got.readings) {
    ASSERT_TRUE(r.poll_ok) << r.error;
    EXPECT_NEAR(r.battery_voltage_v.value, 51.2, 1e-9);
    EXPECT_NEAR(r.soc_pct.value, 80, 1e-9);
    EXPECT_NEAR(r.battery_current_a.value, 40.0, 1e-9);     // discharge-positive
    EXPECT_EQ(r.battery_temp_c.quality, Quality::kAbsent);  // not in SunSpec 802
    EXPECT_EQ(r.mains_ok.quality, Quality::kAbsent);        // no point: the rule decides
    EXPECT_EQ(r.mains_lost_above_discharge_a, 1.0);
    EXPECT_FALSE(r.absent_points) << *r.absent_points;
    tracker.Feed(r);
  }
  // Discharging 40 A: mains lost, by the map's rule (never "healthy").
  EXPECT_TRUE(tracker.mains_failed());
  EXPECT_EQ(tracker.state(), core::PowerState::kOnBattery);
}

TEST(PollerTest, BlocksADeviceRefusesAreAbsentAndTheRestIsDelivered) {
  auto server = StandardSunSpecServer();
  PollerOptions opts = Fast();  // absent_reprobe: the default hour
  Polled got = PollUntil(server, "sunspec-802-plant", opts, 4);
  ASSERT_EQ(got.readings.size(), 4u);
  for (const Reading& r : got.readings) {
    ASSERT_TRUE(r.poll_ok) << r.error;
    EXPECT_NEAR(r.battery_voltage_v.value, 51.2, 1e-9);
    EXPECT_NEAR(r.battery_current_a.value, 40.0, 1e-9);
    EXPECT_EQ(r.battery_temp_c.quality, Quality::kAbsent);
    EXPECT_EQ(r.lvd_v.quality, Quality::kAbsent);
    EXPECT_EQ(r.mains_ok.quality, Quality::kAbsent);
    EXPECT_EQ(r.generator_running.quality, Quality::kAbsent);
    ASSERT_TRUE(r.absent_points);
    EXPECT_EQ(r.absent_points, got.readings[0].absent_points);  // one pointer, logged once
  }
  const std::string& absent = *got.readings[0].absent_points;
  for (const char* p : {"battery_temp_c", "lvd_v", "mains_ok", "generator_running", "lvd_open",
                        "register 40200+2", "fc 2 register 0+3", "exception 0x02"})
    EXPECT_NE(absent.find(p), std::string::npos) << p << " in " << absent;
  EXPECT_EQ(absent.find("battery_voltage_v"), std::string::npos) << absent;
  // The refused blocks are not asked again before the re-probe: one request
  // (the 802 block) a poll.
  for (size_t i = 2; i < got.requests_after.size(); ++i)
    EXPECT_EQ(got.requests_after[i] - got.requests_after[i - 1], 1u) << i;
}

TEST(PollerTest, RefusedBlocksAreAskedAgainAtTheReprobe) {
  auto server = StandardSunSpecServer();
  PollerOptions opts = Fast();
  opts.absent_reprobe = core::Millis(0);  // every poll asks them again
  Polled got = PollUntil(server, "sunspec-802-plant", opts, 4);
  for (size_t i = 2; i < got.requests_after.size(); ++i)
    EXPECT_EQ(got.requests_after[i] - got.requests_after[i - 1], 3u) << i;
  for (const Reading& r : got.readings) {
    ASSERT_TRUE(r.poll_ok) << r.error;
    EXPECT_TRUE(r.absent_points);
  }
}

TEST(PollerTest, ADeviceThatRefusesEveryBlockFailsThePoll) {
  // Holding registers where no map of ours reads them, no discrete inputs.
  testing::TestServer server(100, 10, nullptr, {}, 0);
  Polled got = PollUntil(server, "victron-gx-system", Fast(), 2);
  for (const Reading& r : got.readings) {
    EXPECT_FALSE(r.poll_ok);
    EXPECT_NE(r.error.find("refused every block"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("site STD"), std::string::npos) << r.error;
  }
}

TEST(RunCoalescedTest, RunsEveryHandlerAndTimerThenReturnsOrStops) {
  boost::asio::io_context io;
  int ran = 0;
  for (int i = 0; i < 3; ++i) boost::asio::post(io, [&ran] { ++ran; });
  boost::asio::steady_timer t1(io), t2(io);
  t1.expires_after(std::chrono::milliseconds(1));
  t1.async_wait([&ran](const boost::system::error_code& ec) { ran += ec ? 0 : 10; });
  t2.expires_after(std::chrono::milliseconds(3));  // due while the loop gathers events
  t2.async_wait([&ran](const boost::system::error_code& ec) { ran += ec ? 0 : 100; });
  RunCoalesced(io, std::chrono::milliseconds(2));  // out of work: returns
  EXPECT_EQ(ran, 113);
  // Stopped from a handler: returns although a timer is still pending.
  io.restart();
  boost::asio::steady_timer later(io);
  later.expires_after(std::chrono::hours(1));
  later.async_wait([&ran](const boost::system::error_code&) { ran = -1; });
  boost::asio::post(io, [&io] { io.stop(); });
  RunCoalesced(io, std::chrono::milliseconds(2));
  EXPECT_EQ(ran, 113);
}

}  // namespace
}  // namespace sitepower::modbus
