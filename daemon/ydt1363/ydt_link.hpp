// One YD/T 1363 bus, shared by every device (ADR) on it, on the Modbus
// module's Link interface so the poller drives it like an RTU bus: a serial
// line (RS-485/RS-232 through boost::asio::serial_port) or a serial-to-TCP
// converter (the same ASCII frames over one TCP connection).
//
// The poller reads "blocks" of a device's virtual registers (point_map.hpp):
// each block lies inside one command of the device's map, so a block is one
// request frame (VER ADR CID1 CID2 INFO) and one reply, whose INFO becomes the
// block's words. Devices are attached by ADR with their map before polling.
//
// A bus carries one request at a time: requests queue in arrival order (FIFO,
// every device gets its turn) and go out one after the other. A request's
// timeout counts from when it is written; a reply that has started by then
// may finish as long as its characters keep coming. A request may wait in
// the queue up to 4 timeouts more, then fails unsent. After a timeout or a
// bad frame (checksum, length, non-hex) the bus waits until the line has
// been quiet for `settle` and drops what arrived, so a slow device's late
// reply is never taken for the next device's answer; a whole frame from
// another ADR while waiting is skipped (counted as a late reply). A device
// that does not answer costs its own timeout and the settle, nothing else.
// YD/T frames carry no transaction id: a device's own reply that comes later
// than timeout + settle cannot be told from its next answer (an INFO that
// does not fit the next command is then named as a bad reply).
//
// Errors name what was wrong: DeadlineExceeded "ADR 0x02 CID1 0x46 CID2 0x42:
// no answer within 500 ms"; InvalidArgument "...: checksum: frame says ...,
// computed ..." (also length, non-hex, a reply whose INFO the map cannot
// walk); FailedPrecondition "...: device refused ...: CID2 invalid (RTN 0x04)";
// Unavailable when the line cannot be opened (backing off) or was lost.
//
// The stream opens on the first request and reopens by itself after a read
// or write error or a converter that closed the connection; failed opens back
// off (doubling, with jitter). Never throws, never blocks the io_context.
// Single-threaded: use it on its io_context's thread only.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "core/time.hpp"
#include "modbus/link.hpp"
#include "modbus/poller.hpp"
#include "ydt1363/frame.hpp"
#include "ydt1363/point_map.hpp"

namespace sitepower::ydt1363 {

struct LinkOptions {
  core::Millis connect_timeout{1500};  // TCP connect to a converter
  // After a timeout or a bad frame: the line must be silent this long before
  // the next request; bytes meanwhile are dropped.
  core::Millis settle{50};
  core::Millis settle_limit{1000};  // a line that never goes quiet: send anyway
  // While a reply is arriving: a pause this long inside it ends the wait,
  // and the reply must be whole within reply_limit after the timeout.
  core::Millis char_gap{100};
  core::Millis reply_limit{5000};
  core::Millis reopen_min{250};  // backoff after a failed open: doubling to reopen_max
  core::Millis reopen_max{30000};
};

struct BusStats {
  uint64_t bad_frames = 0;       // checksum, length, non-hex, wrong CID1
  uint64_t refused = 0;          // RTN != 0
  uint64_t discarded_bytes = 0;  // noise, partial frames, bytes nobody asked for
  uint64_t not_sent = 0;         // requests that timed out in the queue
};

class YdtLink final : public modbus::Link, public std::enable_shared_from_this<YdtLink> {
 public:
  static std::shared_ptr<YdtLink> Serial(boost::asio::any_io_executor ex, modbus::SerialLine line,
                                         LinkOptions options = {});
  static std::shared_ptr<YdtLink> OverTcp(boost::asio::any_io_executor ex, std::string host,
                                          uint16_t port, LinkOptions options = {});
  ~YdtLink() override;
  YdtLink(const YdtLink&) = delete;
  YdtLink& operator=(const YdtLink&) = delete;

  // Polls the device at `adr` with `map` (which must outlive the link).
  // InvalidArgument when that ADR is attached already with another map.
  core::Status Attach(uint8_t adr, const YdtMap* map);

  // Reads the virtual registers `block` of the device `unit` (its ADR): one
  // request frame for the command holding them. Errors: see above; an ADR
  // not attached or a block outside every command is InvalidArgument.
  boost::asio::awaitable<core::Result<std::vector<uint16_t>>> Transact(
      uint8_t unit, modbus::ReadBlock block, core::Millis timeout) override;
  void LimitInFlight(size_t) override {}  // one request at a time anyway
  size_t outstanding() const override { return queue_.size() + (current_ ? 1 : 0); }
  void Shutdown() override;
  const std::string& name() const override { return name_; }  // ydt:/dev/x, ydt+tcp://h:p
  const modbus::LinkStats& stats() const override { return stats_; }
  const BusStats& bus_stats() const { return bus_stats_; }

 private:
  class Stream;  // serial port or TCP socket (ydt_link.cpp)
  class SerialStream;
  class TcpStream;
  struct Pending;
  using Clock = std::chrono::steady_clock;
  enum class State { kClosed, kOpening, kOpen, kShutdown };

  YdtLink(boost::asio::any_io_executor ex, std::string name, std::unique_ptr<Stream> stream,
          LinkOptions options);
  boost::asio::awaitable<void> Run(std::shared_ptr<YdtLink> self);
  boost::asio::awaitable<void> Open(std::shared_ptr<YdtLink> self);
  boost::asio::awaitable<void> ReadLoop(std::shared_ptr<YdtLink> self, uint64_t generation);
  boost::asio::awaitable<void> Exchange(Pending* p);
  boost::asio::awaitable<void> WaitQuiet(std::chrono::nanoseconds quiet);
  void Finish(Pending* p, core::Result<Frame> reply);
  void FailQueued(const core::Status& why);
  void Close(const std::string& why);
  void Drop(const std::string& why);

  boost::asio::any_io_executor ex_;
  std::string name_;
  std::unique_ptr<Stream> stream_;
  LinkOptions options_;
  std::map<uint8_t, const YdtMap*> devices_;
  State state_ = State::kClosed;
  uint64_t generation_ = 0;  // bumped on every close: the old read loop stands down
  bool running_ = false;
  std::deque<Pending*> queue_;
  Pending* current_ = nullptr;
  bool awaiting_ = false;  // bytes arriving now belong to current_'s reply
  FrameSplitter splitter_;
  Clock::time_point last_rx_{};
  Clock::time_point line_busy_until_{};
  boost::asio::steady_timer rx_signal_;
  boost::asio::steady_timer pace_;
  int failures_ = 0;
  bool replied_since_open_ = false;
  Clock::time_point retry_at_{};
  std::string last_error_;
  std::minstd_rand rng_;
  std::vector<uint8_t> tx_;
  modbus::LinkStats stats_;
  BusStats bus_stats_;
};

// The poller's link factory for protocol "ydt1363" (Poller::AddProtocol):
// devices at one endpoint (a serial device, a converter's host:port) share a
// YdtLink; each is attached at ADR spec.unit with the map spec.map from
// `maps` (which must outlive the poller). Errors: an unknown map, an ADR out
// of 0-255 or attached twice with different maps (InvalidArgument).
modbus::Poller::LinkFactory LinkFactory(boost::asio::any_io_executor ex, const YdtMapRegistry& maps,
                                        core::Millis connect_timeout);

}  // namespace sitepower::ydt1363
