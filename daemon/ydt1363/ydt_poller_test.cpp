// The Modbus poller driving YD/T 1363 devices through the link factory: the
// same canonical readings as a Modbus controller, a dead pack on the bus
// does not starve the plant, and a mixed endpoint is refused.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <map>

#include "modbus/poller.hpp"
#include "sim/ydt_sim.hpp"
#include "ydt1363/ydt_link.hpp"

namespace sitepower::ydt1363 {
namespace {

modbus::DeviceSpec Ydt(const std::string& site, uint16_t port, int adr, const std::string& map) {
  modbus::DeviceSpec d = modbus::DeviceSpec::Tcp(site, "127.0.0.1", port, adr, map);
  d.transport = modbus::Transport::kRtuOverTcp;  // a serial-to-TCP converter
  d.protocol = "ydt1363";
  return d;
}

TEST(YdtPoller, PollsYdtDevicesIntoCanonicalReadings) {
  auto ydt = YdtMapRegistry::Load("");
  ASSERT_TRUE(ydt.ok()) << ydt.status().message();
  auto maps = modbus::MapRegistry::Load("");
  ASSERT_TRUE(maps.ok());
  ydt->ExportTo(&*maps);

  sim::YdtBus bus;
  std::string err;
  const int plant = bus.Add(1, *ydt->Find("ydt-dc-power"), &err);
  const int pack = bus.Add(2, *ydt->Find("ydt-pylontech-lfp"), &err);
  const int dead = bus.Add(3, *ydt->Find("ydt-pylontech-lfp"), &err);
  ASSERT_GE(dead, 0) << err;
  sim::ControllerState s;
  s.voltage_v = 50.25;
  s.current_a = 18.0;
  s.temp_c = 12.5;
  s.soc_pct = 70;
  s.capacity_ah = 100;
  s.mains_ok = false;
  s.lvd_open = false;
  bus.Set(plant, s);
  bus.Set(pack, s);
  bus.SetFault(dead, sim::YdtFault::kSilent);
  const uint16_t port = bus.ListenTcp(&err);
  ASSERT_NE(port, 0) << err;
  bus.Start();

  boost::asio::io_context io;
  core::SystemClock clock;
  modbus::PollerOptions opts;
  opts.interval = core::Millis(100);
  opts.on_battery_interval = core::Millis(100);
  opts.timeout = core::Millis(250);
  std::map<std::string, std::vector<modbus::Reading>> got;
  modbus::Poller poller(
      io, clock, *maps, opts,
      [&got](const core::SiteId& site, const modbus::Reading& r) { got[site].push_back(r); });
  // Without the factory the protocol is refused, naming the site.
  auto refused = poller.AddDevice(Ydt("PLANT", port, 1, "ydt-dc-power"));
  EXPECT_NE(refused.message().find("site PLANT: protocol 'ydt1363' is not wired"),
            std::string::npos)
      << refused.message();
  poller.AddProtocol("ydt1363", LinkFactory(io.get_executor(), *ydt, opts.timeout));
  ASSERT_TRUE(poller.AddDevice(Ydt("PLANT", port, 1, "ydt-dc-power")).ok());
  ASSERT_TRUE(poller.AddDevice(Ydt("PACK", port, 2, "ydt-pylontech-lfp")).ok());
  ASSERT_TRUE(poller.AddDevice(Ydt("DEAD", port, 3, "ydt-pylontech-lfp")).ok());
  auto twice = poller.AddDevice(Ydt("TWIN", port, 2, "ydt-dc-power"));
  EXPECT_NE(twice.message().find("ADR 0x02 is polled with map 'ydt-pylontech-lfp' already"),
            std::string::npos)
      << twice.message();
  auto unknown = poller.AddDevice(Ydt("NOMAP", port, 5, "sunspec-802"));
  EXPECT_NE(unknown.message().find("unknown YD/T 1363 map 'sunspec-802'"), std::string::npos)
      << unknown.message();
  EXPECT_EQ(poller.stats().links, 1u);  // one bus for the three devices
  poller.Start();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  auto enough = [&got] {
    auto good = [&got](const std::string& site) {
      int n = 0;
      for (const auto& r : got[site]) n += r.poll_ok;
      return n;
    };
    return good("PLANT") >= 3 && good("PACK") >= 3 && got["DEAD"].size() >= 2;
  };
  while (!enough() && std::chrono::steady_clock::now() < give_up)
    io.run_for(std::chrono::milliseconds(10));
  poller.Stop();
  ASSERT_TRUE(enough());
  const modbus::Reading* p = nullptr;
  for (const auto& r : got["PLANT"])
    if (r.poll_ok) p = &r;
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->mains_ok.value, 0.0);
  EXPECT_NEAR(p->battery_voltage_v.value, 50.25, 1e-4);
  EXPECT_NEAR(p->battery_current_a.value, 18.0, 1e-4);  // + = discharging
  EXPECT_NEAR(p->battery_temp_c.value, 12.5, 1e-4);
  EXPECT_NEAR(p->soc_pct.value, 70.0, 1e-4);
  EXPECT_EQ(p->lvd_open.value, 0.0);
  const modbus::Reading* b = nullptr;
  for (const auto& r : got["PACK"])
    if (r.poll_ok) b = &r;
  ASSERT_NE(b, nullptr);
  EXPECT_NEAR(b->remaining_ah.value, 70.0, 1e-3);
  EXPECT_NEAR(b->battery_current_a.value, 18.0, 0.05);
  for (const auto& r : got["DEAD"]) {
    EXPECT_FALSE(r.poll_ok);
    EXPECT_NE(r.error.find("site DEAD (ydt+tcp://127.0.0.1:"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("no answer within 250 ms"), std::string::npos) << r.error;
  }
}

}  // namespace
}  // namespace sitepower::ydt1363
