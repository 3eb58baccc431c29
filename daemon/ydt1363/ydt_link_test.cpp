// A YD/T 1363 bus with real bytes on loopback: the simulated devices of
// tools/sim/ydt_sim.hpp behind a serial-to-TCP converter, or behind a
// pseudo-terminal opened by the link as a serial line.
#include "ydt1363/ydt_link.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <algorithm>
#include <functional>

#include <gtest/gtest.h>

#include "sim/ydt_sim.hpp"

namespace sitepower::ydt1363 {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using ReadResult = core::Result<std::vector<uint16_t>>;
using std::chrono::milliseconds;

const YdtMapRegistry& Maps() {
  static const YdtMapRegistry reg = *YdtMapRegistry::Load("");
  return reg;
}
const YdtMap& Dc() { return *Maps().Find("ydt-dc-power"); }
const YdtMap& Pack() { return *Maps().Find("ydt-pylontech-lfp"); }

// Runs the loop until `done`; fails (instead of hanging) after 20 s.
void RunUntil(asio::io_context& io, const std::function<bool()>& done) {
  const auto give_up = Clock::now() + std::chrono::seconds(20);
  while (!done() && Clock::now() < give_up) {
    if (io.stopped()) io.restart();  // it ran out of work: new work may have come since
    io.run_for(milliseconds(5));
  }
  ASSERT_TRUE(done()) << "the loop did not finish in 20 s";
}

struct Outcome {
  bool finished = false;
  ReadResult result = core::Status::Internal("not run");
  Clock::time_point at{};
};

// Starts a read of `map`'s block `k` from `adr`; `out` is filled when done.
void Read(asio::io_context& io, std::shared_ptr<YdtLink> link, uint8_t adr, const YdtMap& map,
          size_t k, milliseconds timeout, Outcome* out) {
  asio::co_spawn(
      io,
      [](std::shared_ptr<YdtLink> l, uint8_t a, modbus::ReadBlock b, milliseconds t,
         Outcome* o) -> asio::awaitable<void> {
        o->result = co_await l->Transact(a, b, t);
        o->at = Clock::now();
        o->finished = true;
      }(link, adr, map.registers.blocks.at(k), timeout, out),
      asio::detached);
}

// Polls every block of `map` at `adr` and decodes it as the poller does.
modbus::Reading Poll(asio::io_context& io, std::shared_ptr<YdtLink> link, uint8_t adr,
                     const YdtMap& map, std::string* error) {
  std::vector<Outcome> outs(map.registers.blocks.size());
  for (size_t k = 0; k < outs.size(); ++k) Read(io, link, adr, map, k, milliseconds(500), &outs[k]);
  RunUntil(io, [&outs] {
    return std::all_of(outs.begin(), outs.end(), [](const Outcome& o) { return o.finished; });
  });
  std::vector<std::vector<uint16_t>> data;
  for (const auto& o : outs) {
    if (!o.result.ok()) {
      *error = o.result.status().message();
      return {};
    }
    data.push_back(*o.result);
  }
  return modbus::DecodeReading(map.registers, data, core::TimePoint{}, nullptr);
}

sim::ControllerState OnBattery() {
  sim::ControllerState s;
  s.voltage_v = 49.5;
  s.current_a = 42.0;  // discharging
  s.temp_c = 31.0;
  s.soc_pct = 64.0;
  s.capacity_ah = 50;
  s.mains_ok = false;
  return s;
}

TEST(YdtLink, PollsAPlantAndAPackOnOneConverter) {
  sim::YdtBus bus;
  std::string err;
  const int plant = bus.Add(1, Dc(), &err);
  const int pack = bus.Add(2, Pack(), &err);
  ASSERT_GE(pack, 0) << err;
  bus.Set(plant, OnBattery());
  bus.Set(pack, OnBattery());
  const uint16_t port = bus.ListenTcp(&err);
  ASSERT_NE(port, 0) << err;
  bus.Start();
  asio::io_context io;
  auto link = YdtLink::OverTcp(io.get_executor(), "127.0.0.1", port);
  ASSERT_TRUE(link->Attach(1, &Dc()).ok());
  ASSERT_TRUE(link->Attach(2, &Pack()).ok());
  EXPECT_FALSE(link->Attach(2, &Dc()).ok());
  modbus::Reading r = Poll(io, link, 1, Dc(), &err);
  ASSERT_TRUE(err.empty()) << err;
  EXPECT_EQ(r.mains_ok.value, 0.0);
  EXPECT_NEAR(r.battery_voltage_v.value, 49.5, 1e-4);
  EXPECT_NEAR(r.battery_current_a.value, 42.0, 1e-4);
  EXPECT_NEAR(r.soc_pct.value, 64.0, 1e-4);
  EXPECT_NEAR(r.battery_temp_c.value, 31.0, 1e-4);
  EXPECT_EQ(r.lvd_open.value, 0.0);
  modbus::Reading p = Poll(io, link, 2, Pack(), &err);
  ASSERT_TRUE(err.empty()) << err;
  EXPECT_NEAR(p.battery_voltage_v.value, 49.5, 1e-3);
  EXPECT_NEAR(p.battery_current_a.value, 42.0, 0.05);
  EXPECT_NEAR(p.remaining_ah.value, 32.0, 1e-3);
  EXPECT_EQ(link->stats().requests, 4u);
  EXPECT_EQ(link->stats().answers, 4u);
  EXPECT_EQ(link->stats().connects, 1u);
  link->Shutdown();
}

TEST(YdtLink, ADeadDeviceCostsTheOthersOneTimeout) {
  sim::YdtBus bus;
  std::string err;
  const int alive = bus.Add(1, Pack(), &err);
  const int dead = bus.Add(3, Pack(), &err);
  bus.Set(alive, OnBattery());
  bus.SetFault(dead, sim::YdtFault::kSilent);
  const uint16_t port = bus.ListenTcp(&err);
  bus.Start();
  asio::io_context io;
  auto link = YdtLink::OverTcp(io.get_executor(), "127.0.0.1", port);
  ASSERT_TRUE(link->Attach(1, &Pack()).ok());
  ASSERT_TRUE(link->Attach(3, &Pack()).ok());
  const milliseconds timeout(300);
  // Dead first, the live pack queued behind it, then the dead one again and
  // the live one again: FIFO, each dead request costs one timeout.
  Outcome d1, a1, d2, a2;
  const auto start = Clock::now();
  Read(io, link, 3, Pack(), 0, timeout, &d1);
  Read(io, link, 1, Pack(), 0, timeout, &a1);
  Read(io, link, 3, Pack(), 0, timeout, &d2);
  Read(io, link, 1, Pack(), 0, timeout, &a2);
  RunUntil(io, [&] { return d1.finished && a1.finished && d2.finished && a2.finished; });
  ASSERT_FALSE(d1.result.ok());
  EXPECT_EQ(d1.result.status().code(), core::Status::Code::kDeadlineExceeded);
  EXPECT_NE(d1.result.status().message().find("ADR 0x03 CID1 0x46 CID2 0x42 (analog)"),
            std::string::npos)
      << d1.result.status().message();
  EXPECT_NE(d1.result.status().message().find("no answer within 300 ms"), std::string::npos);
  ASSERT_TRUE(a1.result.ok()) << a1.result.status().message();
  ASSERT_TRUE(a2.result.ok()) << a2.result.status().message();
  EXPECT_LT(d1.at, a1.at);
  EXPECT_LT(a1.at, d2.at);
  // The live pack waited for one dead request each time, not for more: two
  // timeouts (and two settles) in all, well under three.
  EXPECT_LT(a2.at - start, 3 * timeout);
  EXPECT_EQ(link->stats().timeouts, 2u);
  EXPECT_EQ(bus.replies(alive), 2u);
  link->Shutdown();
}

TEST(YdtLink, BadFramesAndRefusalsAreNamed) {
  sim::YdtBus bus;
  std::string err;
  const int bad = bus.Add(1, Pack(), &err);
  const int refuses = bus.Add(2, Pack(), &err);
  const int other_map = bus.Add(4, Pack(), &err);
  const int cut = bus.Add(5, Pack(), &err);
  for (int d : {bad, refuses, other_map, cut}) bus.Set(d, OnBattery());
  bus.SetFault(cut, sim::YdtFault::kTruncated);
  bus.SetFault(bad, sim::YdtFault::kBadChecksum);
  bus.SetFault(refuses, sim::YdtFault::kRefuse);
  const uint16_t port = bus.ListenTcp(&err);
  bus.Start();
  asio::io_context io;
  auto link = YdtLink::OverTcp(io.get_executor(), "127.0.0.1", port);
  ASSERT_TRUE(link->Attach(1, &Pack()).ok());
  ASSERT_TRUE(link->Attach(2, &Pack()).ok());
  ASSERT_TRUE(link->Attach(4, &Dc()).ok());  // the device is a pack: it knows no 0x40
  ASSERT_TRUE(link->Attach(5, &Pack()).ok());
  Outcome c, r, u, t;
  Read(io, link, 1, Pack(), 0, milliseconds(500), &c);
  Read(io, link, 2, Pack(), 0, milliseconds(500), &r);
  Read(io, link, 4, Dc(), 0, milliseconds(500), &u);
  Read(io, link, 5, Pack(), 0, milliseconds(300), &t);
  RunUntil(io, [&] { return c.finished && r.finished && u.finished && t.finished; });
  ASSERT_FALSE(c.result.ok());
  EXPECT_EQ(c.result.status().code(), core::Status::Code::kInvalidArgument);
  EXPECT_NE(c.result.status().message().find("checksum: frame says"), std::string::npos)
      << c.result.status().message();
  ASSERT_FALSE(r.result.ok());
  EXPECT_EQ(r.result.status().code(), core::Status::Code::kFailedPrecondition);
  EXPECT_NE(r.result.status().message().find("command format error (RTN 0x05)"), std::string::npos)
      << r.result.status().message();
  ASSERT_FALSE(u.result.ok());
  EXPECT_NE(u.result.status().message().find("CID2 invalid (RTN 0x04)"), std::string::npos)
      << u.result.status().message();
  ASSERT_FALSE(t.result.ok());
  EXPECT_NE(t.result.status().message().find("ADR 0x05 CID1 0x46 CID2 0x42 (analog): length: "
                                             "reply cut off (no EOI) within 300 ms"),
            std::string::npos)
      << t.result.status().message();
  EXPECT_EQ(link->bus_stats().bad_frames, 2u);
  EXPECT_EQ(link->bus_stats().refused, 2u);
  // Unknown ADR and registers outside every command never reach the wire.
  Outcome none;
  Read(io, link, 9, Pack(), 0, milliseconds(500), &none);
  RunUntil(io, [&] { return none.finished; });
  EXPECT_NE(none.result.status().message().find("no device attached at ADR 0x09"),
            std::string::npos);
  link->Shutdown();
}

TEST(YdtLink, ALateReplyIsSkippedNotTakenForTheNextAnswer) {
  sim::YdtBus bus;
  std::string err;
  const int slow = bus.Add(2, Pack(), &err);
  const int fast = bus.Add(1, Pack(), &err);
  sim::ControllerState s = OnBattery();
  bus.Set(fast, s);
  s.voltage_v = 40.0;  // what the slow pack would say
  bus.Set(slow, s);
  bus.SetFault(slow, sim::YdtFault::kLate, milliseconds(400));
  const uint16_t port = bus.ListenTcp(&err);
  bus.Start();
  asio::io_context io;
  LinkOptions options;
  options.settle = milliseconds(20);
  auto link = YdtLink::OverTcp(io.get_executor(), "127.0.0.1", port, options);
  ASSERT_TRUE(link->Attach(1, &Pack()).ok());
  ASSERT_TRUE(link->Attach(2, &Pack()).ok());
  Outcome late, next;
  Read(io, link, 2, Pack(), 0, milliseconds(200), &late);
  Read(io, link, 1, Pack(), 0, milliseconds(1000), &next);
  RunUntil(io, [&] { return late.finished && next.finished; });
  EXPECT_EQ(late.result.status().code(), core::Status::Code::kDeadlineExceeded);
  ASSERT_TRUE(next.result.ok()) << next.result.status().message();
  std::vector<std::vector<uint16_t>> data{*next.result};
  modbus::Reading r = modbus::DecodeReading(Pack().registers, data, core::TimePoint{}, nullptr);
  EXPECT_NEAR(r.battery_voltage_v.value, 49.5, 1e-3);  // the fast pack's, not 40 V
  EXPECT_GE(link->stats().late_replies, 1u);
  link->Shutdown();
}

TEST(YdtLink, SerialLineThroughAPseudoTerminal) {
  sim::YdtBus bus;
  std::string err;
  const int pack = bus.Add(2, Pack(), &err);
  bus.Set(pack, OnBattery());
  const std::string path = bus.OpenPty(&err);
  ASSERT_FALSE(path.empty()) << err;
  bus.Start();
  asio::io_context io;
  modbus::SerialLine line;
  line.device = path;
  line.baud = 9600;
  auto link = YdtLink::Serial(io.get_executor(), line);
  ASSERT_TRUE(link->Attach(2, &Pack()).ok());
  modbus::Reading p = Poll(io, link, 2, Pack(), &err);
  ASSERT_TRUE(err.empty()) << err;
  EXPECT_NEAR(p.battery_voltage_v.value, 49.5, 1e-3);
  EXPECT_EQ(link->name(), "ydt:" + path);
  link->Shutdown();
}

TEST(YdtLink, AClosedConverterFailsFastWhileBackingOff) {
  asio::io_context io;
  // A port that was bound and closed again: nobody listens, connect is refused.
  uint16_t port = 0;
  {
    asio::ip::tcp::acceptor acc(io,
                                asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = acc.local_endpoint().port();
  }
  auto link = YdtLink::OverTcp(io.get_executor(), "127.0.0.1", port);
  ASSERT_TRUE(link->Attach(1, &Pack()).ok());
  Outcome first, second;
  Read(io, link, 1, Pack(), 0, milliseconds(300), &first);
  RunUntil(io, [&] { return first.finished; });
  EXPECT_EQ(first.result.status().code(), core::Status::Code::kUnavailable);
  Read(io, link, 1, Pack(), 0, milliseconds(300), &second);
  RunUntil(io, [&] { return second.finished; });
  EXPECT_NE(second.result.status().message().find("reopening in"), std::string::npos)
      << second.result.status().message();
  EXPECT_EQ(link->stats().connect_failures, 1u);
  link->Shutdown();
}

}  // namespace
}  // namespace sitepower::ydt1363
