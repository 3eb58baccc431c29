// One Modbus TCP connection per endpoint (host:port), shared by every unit id
// polled there (FIELD-NOTES §3 row 6: devices and gateways allow 1-2
// connections). Up to `max_in_flight` requests are outstanding at once,
// matched to replies by transaction id; the rest queue. Every request has its
// own deadline. One silent unit behind a gateway does not cost the others the
// link: the connection is only dropped when the whole endpoint has gone quiet,
// when the byte stream is garbage, or on a socket error. It reconnects by
// itself when a request arrives (the device loops add backoff with jitter).
//
// Internal to the modbus module (poller.cpp). Single-threaded: use it on its
// io_context's thread only.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "core/time.hpp"
#include "modbus/link.hpp"
#include "modbus/register_map.hpp"

namespace sitepower::modbus {

using ConnectionStats = LinkStats;

class Connection final : public Link, public std::enable_shared_from_this<Connection> {
 public:
  Connection(boost::asio::any_io_executor ex, std::string host, uint16_t port, size_t max_in_flight,
             core::Millis connect_timeout);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Reads `block` from `unit`. Never throws. Errors: Unavailable (connect or
  // link), DeadlineExceeded (no answer within timeout), FailedPrecondition
  // (Modbus exception reply), InvalidArgument (malformed reply).
  boost::asio::awaitable<core::Result<std::vector<uint16_t>>> Transact(
      uint8_t unit, ReadBlock block, core::Millis timeout) override;
  // Lowers the in-flight limit (several maps on one endpoint: the strictest wins).
  void LimitInFlight(size_t n) override {
    max_in_flight_ = std::max<size_t>(1, std::min(max_in_flight_, n));
  }
  // Fails everything in flight and closes; later requests reconnect.
  void Close(const std::string& why);
  // Close and refuse every later request (Poller::Stop).
  void Shutdown() override;
  const std::string& name() const override { return name_; }
  const LinkStats& stats() const override { return stats_; }

 private:
  struct Pending;
  using Clock = std::chrono::steady_clock;
  void Pump();
  void Finish(Pending* p, core::Result<std::vector<uint8_t>> pdu);
  void FailAll(const core::Status& why);
  void Teardown(const std::string& why);  // Close without counting a drop
  boost::asio::awaitable<void> ConnectLoop(std::shared_ptr<Connection> self);
  boost::asio::awaitable<void> ReadLoop(std::shared_ptr<Connection> self, uint64_t generation);
  boost::asio::awaitable<void> WriteLoop(std::shared_ptr<Connection> self, uint64_t generation);

  boost::asio::any_io_executor ex_;
  std::string host_;
  uint16_t port_;
  std::string name_;
  size_t max_in_flight_;
  core::Millis connect_timeout_;
  boost::asio::ip::tcp::socket socket_;
  enum class State { kClosed, kConnecting, kOpen, kShutdown } state_ = State::kClosed;
  uint64_t generation_ = 0;  // bumped on every close: old loops then stand down
  uint16_t next_tid_ = 1;
  std::deque<Pending*> queue_;              // not sent yet
  std::map<uint16_t, Pending*> in_flight_;  // by transaction id
  std::deque<std::vector<uint8_t>> outbox_;
  bool writing_ = false;
  Clock::time_point last_rx_{};
  ConnectionStats stats_;
};

}  // namespace sitepower::modbus
