// The simulated controllers serve any register map: what the daemon's real
// poller reads through that map is the state the drill set.
#include "sim/controller_sim.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <vector>

#include "modbus/poller.hpp"
#include "modbus/register_map.hpp"

namespace sitepower::sim {
namespace {

// One poll of controller `index` of `farm` through `map`.
modbus::Reading PollOnce(ControllerFarm& farm, int index, const modbus::MapRegistry& maps,
                         const std::string& map) {
  boost::asio::io_context io;
  core::SystemClock clock;
  modbus::PollerOptions o;
  o.interval = core::Millis(50);
  o.timeout = core::Millis(2000);
  std::vector<modbus::Reading> got;
  modbus::Poller poller(io, clock, maps, o, [&got](const core::SiteId&, const modbus::Reading& r) {
    got.push_back(r);
  });
  EXPECT_TRUE(poller
                  .AddDevice(modbus::DeviceSpec::Tcp(
                      "S", "127.0.0.1", static_cast<uint16_t>(farm.port(index)), 1, map))
                  .ok());
  poller.Start();
  while (got.empty()) io.run_one();
  poller.Stop();
  io.run();
  return got.front();
}

TEST(ControllerSimTest, ServesEveryBuiltInMapAsThePollerReadsIt) {
  auto maps = modbus::MapRegistry::Load("");
  ASSERT_TRUE(maps.ok());
  ControllerState on_battery;
  on_battery.voltage_v = 50.2;
  on_battery.current_a = 31.5;  // discharging
  on_battery.temp_c = 12.0;
  on_battery.soc_pct = 70;
  on_battery.mains_ok = false;
  for (const std::string& name : maps->Names()) {
    SCOPED_TRACE(name);
    const modbus::RegisterMap& map = *maps->Find(name);
    ControllerFarm farm;
    std::string err;
    int i = farm.Add(map, &err);
    ASSERT_GE(i, 0) << err;
    farm.Set(i, on_battery);
    farm.Start();
    modbus::Reading r = PollOnce(farm, i, *maps, name);
    ASSERT_TRUE(r.poll_ok) << r.error;
    auto has = [&map](const std::string& point) {
      for (const auto& p : map.points)
        if (p.name == point) return true;
      return false;
    };
    if (has("battery_voltage_v")) {
      EXPECT_NEAR(r.battery_voltage_v.value, 50.2, 0.06);
    }
    if (has("battery_current_a")) {
      EXPECT_NEAR(r.battery_current_a.value, 31.5, 0.06);
    }
    if (has("battery_temp_c")) {
      EXPECT_NEAR(r.battery_temp_c.value, 12.0, 0.6);
    }
    if (has("soc_pct")) {
      EXPECT_NEAR(r.soc_pct.value, 70, 0.6);
    }
    // Mains by the battery current (sunspec-802, huawei-esm-48150b1): the
    // tracker reads the current; the register holding it is the one counted.
    const bool by_current = map.mains && map.mains->from_current;
    if (by_current) {
      EXPECT_EQ(r.mains_ok.quality, modbus::Quality::kAbsent);
      EXPECT_GT(r.battery_current_a.value, *r.mains_lost_above_discharge_a);
      EXPECT_GE(farm.Stats(i).di_replies, 1u);
    } else if (has("mains_ok") || map.mains) {
      ASSERT_EQ(r.mains_ok.quality, modbus::Quality::kGood);
      EXPECT_EQ(r.mains_ok.value, 0);
      EXPECT_GE(farm.Stats(i).di_replies, 1u);  // the read that showed mains lost is counted
    }
    ControllerState back = on_battery;
    back.mains_ok = true;
    back.current_a = -12.0;  // recharging
    farm.Set(i, back);
    r = PollOnce(farm, i, *maps, name);
    ASSERT_TRUE(r.poll_ok) << r.error;
    if (by_current) {
      EXPECT_LT(r.battery_current_a.value, *r.mains_lost_above_discharge_a);
    } else if (has("mains_ok") || map.mains) {
      EXPECT_EQ(r.mains_ok.value, 1);
    }
    if (has("battery_current_a")) {
      EXPECT_NEAR(r.battery_current_a.value, -12.0, 0.06);
    }
    farm.Stop();
  }
}

}  // namespace
}  // namespace sitepower::sim
