// One Modbus RTU bus, shared by every unit id on it: a serial line (RS-485 or
// RS-232 through boost::asio::serial_port) or an RTU-over-TCP gateway (raw
// RTU frames, CRC and no MBAP, over one TCP connection).
//
// A bus carries one request at a time: requests queue in arrival order (FIFO,
// so every unit gets its turn) and go out one after the other, each after the
// line has been silent for the inter-frame gap (3.5 character times; 1.75 ms
// above 19200 baud; rtu_codec.hpp). A request's timeout counts from when it
// is on the wire (its last character sent), plus the wire time of the reply
// it asks for at the line's baud; a request may wait in the queue up to 4
// timeouts more, then fails unsent. After a timeout or garbage (bad CRC, a
// reply from another unit, a malformed or truncated frame) the bus waits for
// the line to be quiet for `settle` and discards whatever arrived, so the late
// reply of a slow unit is never taken for the next unit's answer. A unit that
// does not answer costs its own timeout (and the settle) on the bus, nothing
// else: the line stays open for the others.
//
// The stream opens on the first request and reopens by itself: after a read
// or write error, a device that disappeared (USB adapter unplugged), a
// gateway that closed the connection, or (gateway only) several timeouts in a
// row with no byte at all. Failed opens back off exponentially with jitter;
// while backing off, requests fail at once (Unavailable) instead of each
// trying again, so a dead gateway sees one connect per backoff period.
//
// For a gateway the line settings describe the serial line behind it; they
// set the gap and the wire times only.
//
// Internal to the modbus module (poller.cpp). Never throws, never blocks the
// io_context (a serial port opens non-blocking). Single-threaded: use it on
// its io_context's thread only.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "core/time.hpp"
#include "modbus/link.hpp"
#include "modbus/poller.hpp"
#include "modbus/register_map.hpp"

namespace sitepower::modbus {

struct RtuOptions {
  core::Millis connect_timeout{1500};  // TCP connect to a gateway
  // After a timeout or garbage: the line must be silent this long (at least
  // the inter-frame gap) before the next request; bytes meanwhile are dropped.
  core::Millis settle{50};
  core::Millis settle_limit{1000};  // a line that never goes quiet: send anyway
  // Backoff after an open or connect that failed (or gave nothing before it
  // dropped): doubling from reopen_min to reopen_max, +-20 % jitter.
  core::Millis reopen_min{250};
  core::Millis reopen_max{30000};
  // Gateway only: this many timeouts in a row without a single byte back
  // drop the TCP connection (half-open, or a gateway that lost its line).
  int silent_timeouts_to_reconnect = 3;
};

struct RtuStats {
  uint64_t garbage = 0;          // bad CRC, wrong unit, malformed or truncated replies
  uint64_t discarded_bytes = 0;  // arrived when no reply was expected, or after one
  uint64_t not_sent = 0;         // requests that timed out in the queue
};

// "9600 8N1"
std::string DescribeLine(const SerialLine& line);

class RtuLink final : public Link, public std::enable_shared_from_this<RtuLink> {
 public:
  enum class Kind { kSerial, kTcpGateway };
  static std::shared_ptr<RtuLink> Serial(boost::asio::any_io_executor ex, SerialLine line,
                                         RtuOptions options = {});
  static std::shared_ptr<RtuLink> OverTcp(boost::asio::any_io_executor ex, std::string host,
                                          uint16_t port, SerialLine line, RtuOptions options = {});
  ~RtuLink() override;
  RtuLink(const RtuLink&) = delete;
  RtuLink& operator=(const RtuLink&) = delete;

  // Reads `block` from `unit` (1-247). Errors as Link::Transact; unit 0
  // (broadcast: nobody answers a read) or above 247 is InvalidArgument.
  boost::asio::awaitable<core::Result<std::vector<uint16_t>>> Transact(
      uint8_t unit, ReadBlock block, core::Millis timeout) override;
  void LimitInFlight(size_t) override {}  // one request at a time anyway
  size_t outstanding() const override { return queue_.size() + (current_ ? 1 : 0); }
  void Shutdown() override;
  const std::string& name() const override { return name_; }  // rtu:/dev/x, rtu+tcp://h:p
  const LinkStats& stats() const override { return stats_; }
  const RtuStats& rtu_stats() const { return rtu_stats_; }
  const SerialLine& line() const { return line_; }
  Kind kind() const { return kind_; }
  std::chrono::nanoseconds gap() const { return gap_; }

 private:
  class Stream;  // the byte stream: serial port or TCP socket (rtu_link.cpp)
  class SerialStream;
  class TcpStream;
  struct Pending;
  using Clock = std::chrono::steady_clock;
  enum class State { kClosed, kOpening, kOpen, kShutdown };

  RtuLink(boost::asio::any_io_executor ex, Kind kind, std::string name, SerialLine line,
          std::unique_ptr<Stream> stream, RtuOptions options);
  std::chrono::nanoseconds Wire(size_t bytes) const;
  boost::asio::awaitable<void> Run(std::shared_ptr<RtuLink> self);
  boost::asio::awaitable<void> Open(std::shared_ptr<RtuLink> self);
  boost::asio::awaitable<void> ReadLoop(std::shared_ptr<RtuLink> self, uint64_t generation);
  boost::asio::awaitable<void> Exchange(Pending* p);
  boost::asio::awaitable<boost::system::error_code> WriteBounded(const std::vector<uint8_t>& frame,
                                                                 Clock::time_point deadline);
  boost::asio::awaitable<void> WaitQuiet(std::chrono::nanoseconds quiet);
  void Finish(Pending* p, core::Result<std::vector<uint8_t>> pdu);
  void FailQueued(const core::Status& why);
  void Drop(const std::string& why);   // an open stream failed: close, count, reopen later
  void Close(const std::string& why);  // close the stream, fail the request on the wire
  void BackOff();

  boost::asio::any_io_executor ex_;
  Kind kind_;
  std::string name_;
  SerialLine line_;
  int bits_per_char_;
  std::chrono::nanoseconds gap_;
  RtuOptions options_;
  std::unique_ptr<Stream> stream_;
  State state_ = State::kClosed;
  uint64_t generation_ = 0;  // bumped on every close: the old read loop stands down
  bool running_ = false;     // Run() is working the queue
  std::deque<Pending*> queue_;
  Pending* current_ = nullptr;  // the request on the wire
  bool awaiting_ = false;       // bytes arriving now belong to current_'s reply
  std::vector<uint8_t> rx_;
  Clock::time_point last_rx_{};          // the last byte received
  Clock::time_point line_busy_until_{};  // the last request's last character (or a give-up)
  boost::asio::steady_timer rx_signal_;  // Run waits here for bytes (or its deadline)
  boost::asio::steady_timer pace_;       // gaps and settling
  boost::asio::steady_timer write_guard_;
  int failures_ = 0;  // opens in a row that failed or gave nothing
  bool replied_since_open_ = false;
  int silent_timeouts_ = 0;
  Clock::time_point retry_at_{};
  std::string last_error_;
  std::minstd_rand rng_;  // backoff jitter
  LinkStats stats_;
  RtuStats rtu_stats_;
};

// For Poller::AddDevice: a new bus for `spec` (kRtuSerial or kRtuOverTcp).
std::shared_ptr<Link> MakeRtuLink(boost::asio::any_io_executor ex, const DeviceSpec& spec,
                                  core::Millis connect_timeout);
// OK when `spec` may share `link` (not an RTU bus, or the same line
// settings); else InvalidArgument naming the site and both settings.
core::Status CheckJoinsBus(const Link& link, const DeviceSpec& spec);

}  // namespace sitepower::modbus
