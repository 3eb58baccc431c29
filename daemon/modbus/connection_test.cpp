// The shared per-endpoint connection against a libmodbus server (loopback):
// pipelining by transaction id, a mute unit that does not cost the others the
// link, a silent endpoint that is dropped and reopened, recovery after the
// device drops the link, and the poller sharing one connection per endpoint.
#include "modbus/connection.hpp"

#include <algorithm>

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "modbus/poller.hpp"
#include "modbus/test_server.hpp"

namespace sitepower::modbus {
namespace {

namespace asio = boost::asio;
using Results = std::vector<core::Result<std::vector<uint16_t>>>;

bool Pending(const core::Result<std::vector<uint16_t>>& r) {
  return !r.ok() && r.status().message() == "not run";
}

// Runs the loop until every result is in. The connection stays open (its read
// loop keeps waiting), so io.run() alone would never return.
void RunUntilDone(asio::io_context& io, const Results& got, size_t first = 0, size_t last = ~0u) {
  io.restart();
  last = std::min(last, got.size());
  while (std::any_of(got.begin() + first, got.begin() + last, Pending)) io.run_one();
}

// Closes the connection and lets its loops finish.
void Finish(asio::io_context& io, Connection& conn) {
  conn.Shutdown();
  io.restart();
  io.run();
}

asio::awaitable<void> ReadInto(std::shared_ptr<Connection> c, uint8_t unit, ReadBlock b,
                               core::Millis timeout, Results* out, size_t slot) {
  (*out)[slot] = co_await c->Transact(unit, b, timeout);
}

// Reads unit `unit` again and again until *stop is set; counts the outcomes.
asio::awaitable<void> KeepReading(std::shared_ptr<Connection> c, uint8_t unit, const bool* stop,
                                  int* ok, int* failed) {
  while (!*stop) {
    auto r = co_await c->Transact(unit, ReadBlock{Function::kReadHoldingRegisters, 5, 2},
                                  core::Millis(2000));
    if (*stop) break;  // a read cut short by the shutdown below is not a failure
    ++*(r.ok() && (*r)[0] == 5 ? ok : failed);
    asio::steady_timer pause(co_await asio::this_coro::executor);
    pause.expires_after(core::Millis(5));
    boost::system::error_code ec;
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

TEST(ConnectionTest, PipelinesUpToTheLimitAndMatchesRepliesByTransactionId) {
  testing::TestServer server(0, 300, nullptr);
  asio::io_context io;
  auto conn = std::make_shared<Connection>(io.get_executor(), "127.0.0.1", server.port(), 4,
                                           core::Millis(2000));
  Results got(12, core::Status::Internal("not run"));
  for (size_t i = 0; i < got.size(); ++i)
    asio::co_spawn(
        io,
        ReadInto(conn, static_cast<uint8_t>(i + 1),
                 ReadBlock{Function::kReadHoldingRegisters, static_cast<uint16_t>(i * 20), 5},
                 core::Millis(2000), &got, i),
        asio::detached);
  RunUntilDone(io, got);
  Finish(io, *conn);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(got[i].ok()) << i << ": " << got[i].status().ToString();
    EXPECT_EQ((*got[i])[0], i * 20);  // each request got its own reply
    EXPECT_EQ((*got[i])[4], i * 20 + 4);
  }
  EXPECT_EQ(conn->stats().max_in_flight_seen, 4u);
  EXPECT_EQ(conn->stats().connects, 1u);
  EXPECT_EQ(server.accepted(), 1);
}

TEST(ConnectionTest, MuteUnitTimesOutWithoutCostingTheOthersTheLink) {
  testing::TestServer server(0, 100, nullptr, /*mute=*/{7});
  asio::io_context io;
  auto conn = std::make_shared<Connection>(io.get_executor(), "127.0.0.1", server.port(), 4,
                                           core::Millis(2000));
  Results mute(1, core::Status::Internal("not run"));
  bool stop = false;
  int ok = 0, failed = 0;
  asio::co_spawn(io, KeepReading(conn, 1, &stop, &ok, &failed), asio::detached);
  asio::co_spawn(io,
                 ReadInto(conn, 7, ReadBlock{Function::kReadHoldingRegisters, 0, 2},
                          core::Millis(300), &mute, 0),
                 asio::detached);
  RunUntilDone(io, mute);
  stop = true;
  Finish(io, *conn);
  EXPECT_EQ(mute[0].status().code(), core::Status::Code::kDeadlineExceeded);
  EXPECT_NE(mute[0].status().message().find("unit 7"), std::string::npos);
  EXPECT_GE(ok, 3);  // unit 1 kept being read while unit 7 was silent
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(conn->stats().drops, 0u);
  EXPECT_EQ(conn->stats().connects, 1u);
}

TEST(ConnectionTest, SilentEndpointIsDroppedAndReopened) {
  testing::TestServer server(0, 100, nullptr, /*mute=*/{1});
  asio::io_context io;
  auto conn = std::make_shared<Connection>(io.get_executor(), "127.0.0.1", server.port(), 4,
                                           core::Millis(2000));
  Results got(2, core::Status::Internal("not run"));
  asio::co_spawn(io,
                 ReadInto(conn, 1, ReadBlock{Function::kReadHoldingRegisters, 0, 2},
                          core::Millis(100), &got, 0),
                 asio::detached);
  RunUntilDone(io, got, 0, 1);
  EXPECT_EQ(got[0].status().code(), core::Status::Code::kDeadlineExceeded);
  EXPECT_EQ(conn->stats().drops, 1u);  // nothing came back at all: the link is suspect
  asio::co_spawn(io,
                 ReadInto(conn, 1, ReadBlock{Function::kReadHoldingRegisters, 0, 2},
                          core::Millis(100), &got, 1),
                 asio::detached);
  RunUntilDone(io, got);
  Finish(io, *conn);
  EXPECT_EQ(conn->stats().connects, 2u);  // a fresh connection for the next request
}

TEST(ConnectionTest, RecoversAfterTheDeviceDropsTheLink) {
  testing::TestServer server(0, 100, nullptr);
  asio::io_context io;
  auto conn = std::make_shared<Connection>(io.get_executor(), "127.0.0.1", server.port(), 1,
                                           core::Millis(2000));
  Results got(1, core::Status::Internal("not run"));
  auto read_once = [&io, &conn, &got] {
    got[0] = core::Status::Internal("not run");
    asio::co_spawn(io,
                   ReadInto(conn, 1, ReadBlock{Function::kReadHoldingRegisters, 3, 1},
                            core::Millis(1000), &got, 0),
                   asio::detached);
    RunUntilDone(io, got);
    return got[0].ok();
  };
  ASSERT_TRUE(read_once()) << got[0].status().ToString();
  server.DropClients();  // a device reboot, a NAT timeout...
  int attempts = 0, failures = 0;
  while (attempts < 200) {
    ++attempts;
    if (read_once()) break;
    ++failures;
    EXPECT_EQ(got[0].status().code(), core::Status::Code::kUnavailable)
        << got[0].status().ToString();
  }
  EXPECT_TRUE(got[0].ok()) << "no recovery after " << attempts << " attempts";
  Finish(io, *conn);
  EXPECT_LE(failures, 1);  // at most the request that met the dead link
  EXPECT_EQ(conn->stats().connects, 2u);
  EXPECT_EQ(server.accepted(), 2);
}

TEST(ConnectionTest, PollerSharesOneConnectionPerEndpoint) {
  testing::TestServer server(0, 100, nullptr, /*mute=*/{3});
  MapRegistry maps;
  auto m = ParseRegisterMap(
      "name: plain\nmax_in_flight: 4\npoints:\n"
      "  - {name: battery_voltage_v, fc: 3, address: 10, type: u16, scale: 0.01}\n",
      "plain.yaml");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  maps.Add(*m);
  asio::io_context io;
  core::SystemClock clock;
  PollerOptions opts;
  opts.interval = core::Millis(20);
  opts.timeout = core::Millis(300);
  std::map<core::SiteId, std::pair<int, int>> counts;  // ok, failed
  Poller poller(io, clock, maps, opts, [&counts](const core::SiteId& s, const Reading& r) {
    ++(r.poll_ok ? counts[s].first : counts[s].second);
  });
  for (int unit : {1, 2, 3})
    ASSERT_TRUE(poller
                    .AddDevice(DeviceSpec::Tcp("U" + std::to_string(unit), "127.0.0.1",
                                               server.port(), unit, "plain"))
                    .ok());
  poller.Start();
  while (counts["U3"].second < 2) io.run_one();
  poller.Stop();
  io.run();
  EXPECT_GE(counts["U1"].first, 3);
  EXPECT_GE(counts["U2"].first, 3);
  EXPECT_EQ(counts["U1"].second + counts["U2"].second, 0);
  EXPECT_EQ(counts["U3"].first, 0);
  EXPECT_EQ(server.accepted(), 1);  // three unit ids, one TCP connection
  EXPECT_EQ(server.max_clients(), 1);
}

}  // namespace
}  // namespace sitepower::modbus

namespace sitepower::modbus {
namespace {

// The poller's path: a ReadBatch per poll, handed back through on_done.
TEST(ConnectionBatchTest, APollsBlocksArePipelinedAndComeBackTogether) {
  testing::TestServer server(0, 300, nullptr);
  asio::io_context io;
  auto conn = std::make_shared<Connection>(io.get_executor(), "127.0.0.1", server.port(), 8,
                                           core::Millis(2000));
  const std::vector<ReadBlock> blocks = {{Function::kReadHoldingRegisters, 10, 3},
                                         {Function::kReadHoldingRegisters, 100, 2},
                                         {Function::kReadDiscreteInputs, 0, 3}};
  ReadBatch batch;
  batch.unit = 3;
  batch.blocks = blocks;
  batch.timeout = core::Millis(2000);
  int done = 0;
  batch.on_done = [&](ReadBatch&) { ++done; };
  ASSERT_TRUE(conn->Submit(&batch));
  EXPECT_EQ(done, 0);  // never from inside Submit
  EXPECT_EQ(conn->outstanding(), 3u);
  while (done == 0) io.run_one();
  ASSERT_TRUE(batch.status.ok()) << batch.status.ToString();
  ASSERT_EQ(batch.data.size(), 3u);
  EXPECT_EQ(batch.data[0], (std::vector<uint16_t>{10, 11, 12}));
  EXPECT_EQ(batch.data[1], (std::vector<uint16_t>{100, 101}));
  EXPECT_EQ(batch.data[2].size(), 3u);
  EXPECT_EQ(conn->stats().max_in_flight_seen, 3u);  // all three on the wire at once
  // The same batch again (the poller reuses it every poll).
  ASSERT_TRUE(conn->Submit(&batch));
  while (done == 1) io.run_one();
  EXPECT_TRUE(batch.status.ok());
  EXPECT_EQ(batch.data[1], (std::vector<uint16_t>{100, 101}));
  EXPECT_EQ(conn->outstanding(), 0u);
  Finish(io, *conn);
}

TEST(ConnectionBatchTest, AMuteUnitsBatchFailsAtItsDeadlineNamingTheRegister) {
  testing::TestServer server(0, 100, nullptr, /*mute=*/{9});
  asio::io_context io;
  auto conn = std::make_shared<Connection>(io.get_executor(), "127.0.0.1", server.port(), 8,
                                           core::Millis(2000));
  const std::vector<ReadBlock> blocks = {{Function::kReadHoldingRegisters, 20, 2},
                                         {Function::kReadHoldingRegisters, 40, 2}};
  ReadBatch mute, good;
  mute.unit = 9;
  good.unit = 1;
  for (ReadBatch* b : {&mute, &good}) {
    b->blocks = blocks;
    b->timeout = core::Millis(200);
  }
  int mute_done = 0, good_done = 0;
  mute.on_done = [&](ReadBatch&) { ++mute_done; };
  good.on_done = [&](ReadBatch& b) {
    if (++good_done < 10 && b.status.ok()) conn->Submit(&b);  // keeps polling meanwhile
  };
  const auto t0 = std::chrono::steady_clock::now();
  conn->Submit(&mute);
  conn->Submit(&good);
  while (mute_done == 0 || good_done < 10) io.run_one();
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(mute.status.code(), core::Status::Code::kDeadlineExceeded);
  EXPECT_NE(mute.status.message().find("unit 9 fc 3 register 20+2"), std::string::npos)
      << mute.status.message();
  EXPECT_GE(waited, std::chrono::milliseconds(200));
  EXPECT_TRUE(good.status.ok()) << good.status.ToString();
  EXPECT_EQ(conn->stats().drops, 0u);  // the others kept the link alive
  Finish(io, *conn);
}

TEST(ConnectionBatchTest, ShutdownFinishesPendingBatchesAndRefusesLaterOnes) {
  testing::TestServer server(0, 100, nullptr, /*mute=*/{5});
  asio::io_context io;
  auto conn = std::make_shared<Connection>(io.get_executor(), "127.0.0.1", server.port(), 8,
                                           core::Millis(2000));
  const std::vector<ReadBlock> blocks = {{Function::kReadHoldingRegisters, 0, 1}};
  ReadBatch b;
  b.unit = 5;
  b.blocks = blocks;
  b.timeout = core::Millis(5000);
  int done = 0;
  b.on_done = [&](ReadBatch&) { ++done; };
  conn->Submit(&b);
  for (int i = 0; i < 50 && conn->stats().connects == 0; ++i) io.run_one();
  conn->Shutdown();
  EXPECT_EQ(done, 1);  // before Shutdown returned
  EXPECT_EQ(b.status.code(), core::Status::Code::kUnavailable);
  conn->Submit(&b);
  EXPECT_EQ(done, 1);
  io.restart();
  io.run();
  EXPECT_EQ(done, 2);
  EXPECT_NE(b.status.message().find("poller stopped"), std::string::npos);
}

TEST(ConnectionBatchTest, ADeadGatewaySeesOneConnectPerBackoffNotOnePerUnit) {
  int port = 0;
  {
    testing::TestServer gone(0, 1, nullptr);  // a port that nobody listens on afterwards
    port = gone.port();
  }
  asio::io_context io;
  auto conn = std::make_shared<Connection>(io.get_executor(), "127.0.0.1",
                                           static_cast<uint16_t>(port), 4, core::Millis(500));
  const std::vector<ReadBlock> blocks = {{Function::kReadHoldingRegisters, 0, 1}};
  // 50 units behind the gateway, each polling again as soon as it failed,
  // for 1.2 s: a storm of attempts unless the connection backs off.
  std::vector<ReadBatch> units(50);
  int failures = 0;
  std::string last;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1200);
  for (size_t i = 0; i < units.size(); ++i) {
    units[i].unit = static_cast<uint8_t>(i + 1);
    units[i].blocks = blocks;
    units[i].timeout = core::Millis(500);
    units[i].on_done = [&, i](ReadBatch& b) {
      ++failures;
      last = b.status.message();
      if (std::chrono::steady_clock::now() < until) {
        asio::post(io, [&, i]() { conn->Submit(&units[i]); });
      }
    };
    conn->Submit(&units[i]);
  }
  io.run_for(std::chrono::milliseconds(1500));
  conn->Shutdown();
  EXPECT_GT(failures, 500);  // every unit was told at once, again and again
  // Attempts at 0, ~0.25, ~0.75 s (backoff 250, 500, 1000 ms): a handful, not thousands.
  EXPECT_GE(conn->stats().connect_failures, 2u);
  EXPECT_LE(conn->stats().connect_failures, 4u);
  EXPECT_NE(last.find("next attempt in"), std::string::npos) << last;
}

}  // namespace
}  // namespace sitepower::modbus
