// The poller against libmodbus servers (an independent peer) on loopback.
#include "modbus/poller.hpp"

#include <gtest/gtest.h>

#include <map>

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
                                     "sunspec-802"))
          .ok());
  ASSERT_TRUE(
      poller
          .AddDevice(DeviceSpec::Tcp("MUTE", "127.0.0.1", static_cast<uint16_t>(farm.port(mute)), 1,
                                     "sunspec-802"))
          .ok());
  ASSERT_TRUE(
      poller
          .AddDevice(DeviceSpec::Tcp("EXC", "127.0.0.1", static_cast<uint16_t>(farm.port(broken)),
                                     1, "sunspec-802"))
          .ok());
  ASSERT_TRUE(
      poller
          .AddDevice(DeviceSpec::Tcp("JUNK", "127.0.0.1", static_cast<uint16_t>(farm.port(junk)), 1,
                                     "sunspec-802"))
          .ok());
  ASSERT_TRUE(poller.AddDevice(DeviceSpec::Tcp("DEAD", "127.0.0.1", 1, 1, "sunspec-802"))
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

}  // namespace
}  // namespace sitepower::modbus
