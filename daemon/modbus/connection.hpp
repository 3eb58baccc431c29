// One Modbus TCP connection per endpoint (host:port), shared by every unit id
// polled there (FIELD-NOTES §3 row 6: devices and gateways allow 1-2
// connections). Up to `max_in_flight` requests are outstanding at once,
// matched to replies by transaction id; the rest queue. Every request has its
// own deadline. One silent unit behind a gateway does not cost the others the
// link: the connection is only dropped when the whole endpoint has gone quiet,
// when the byte stream is garbage, or on a socket error. It reconnects by
// itself when a request arrives. After a failed connect it waits (250 ms,
// doubling to 30 s, +-20 % jitter) and fails requests at once meanwhile, so
// a dead gateway with a hundred units sees one connect per backoff period,
// not one per unit, and a region whose backhaul returns is not stormed.
//
// Cost (sitepower-pollbench): requests queued in one turn of the event loop
// (a gateway's units polled together) leave in one write; replies that
// arrived together are taken in one read; no allocation and no timer per
// request (one deadline sweep per connection); a poll submitted as a
// ReadBatch is not a coroutine.
//
// Internal to the modbus module (poller.cpp). Single-threaded: use it on its
// io_context's thread only.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <memory>
#include <random>
#include <span>
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
  static constexpr size_t kMaxInFlight = 255;  // transaction slots per connection

  Connection(boost::asio::io_context::executor_type ex, std::string host, uint16_t port,
             size_t max_in_flight, core::Millis connect_timeout);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Reads `block` from `unit`. Never throws. Errors: Unavailable (connect or
  // link), DeadlineExceeded (no answer within timeout), FailedPrecondition
  // (Modbus exception reply), InvalidArgument (malformed reply).
  boost::asio::awaitable<core::Result<std::vector<uint16_t>>> Transact(
      uint8_t unit, ReadBlock block, core::Millis timeout) override;
  boost::asio::awaitable<core::Status> TransactAll(
      uint8_t unit, std::span<const ReadBlock> blocks, core::Millis timeout,
      std::vector<std::vector<uint16_t>>* out) override;
  // The device gets `timeout` for each request from when it is sent; waiting
  // behind other units on a busy link is allowed up to 4 timeouts more.
  bool Submit(ReadBatch* batch) override;
  size_t outstanding() const override { return queue_.size() + in_flight_; }
  size_t in_flight_limit() const override { return max_in_flight_; }
  // Lowers the in-flight limit (several maps on one endpoint: the strictest wins).
  void LimitInFlight(size_t n) override {
    max_in_flight_ = std::clamp<size_t>(std::min(max_in_flight_, n), 1, kMaxInFlight);
  }
  // Fails everything in flight and closes; later requests reconnect.
  void Close(const std::string& why);
  // Close and refuse every later request (Poller::Stop). Batches still
  // pending are finished before it returns.
  void Shutdown() override;
  const std::string& name() const override { return name_; }
  const LinkStats& stats() const override { return stats_; }

 private:
  using Request = ReadBatch::Request;
  using Clock = std::chrono::steady_clock;
  using Timer = boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>,
                                                  boost::asio::io_context::executor_type>;
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp,
                                                  boost::asio::io_context::executor_type>;
  void Pump();
  void StartWrite();
  void StartRead(uint64_t generation);
  void OnRead(uint64_t generation, const boost::system::error_code& ec, size_t n);
  void OnFrame(const MbapHeader& h, std::span<const uint8_t> pdu);
  void Complete(Request* r, core::Status status);
  void Expire(Request* r);  // a sent request's device deadline passed
  void ArmSweep(Clock::time_point deadline);
  void Sweep();
  void Deliver();             // hands finished batches back (their on_done)
  void PostDeliver();         // the same, after this turn (for paths inside Submit)
  void Forget(ReadBatch* b);  // a batch that goes away while submitted
  void FailAll(const core::Status& why);
  void Teardown(const std::string& why);  // Close without counting a drop
  boost::asio::awaitable<void> ConnectLoop(std::shared_ptr<Connection> self);

  boost::asio::io_context::executor_type ex_;
  std::string host_;
  uint16_t port_;
  std::string name_;
  size_t max_in_flight_;
  core::Millis connect_timeout_;
  Socket socket_;
  enum class State { kClosed, kConnecting, kOpen, kShutdown } state_ = State::kClosed;
  uint64_t generation_ = 0;  // bumped on every close: old handlers then stand down
  uint16_t next_tid_ = 1;
  std::deque<Request*> queue_;                      // not sent yet, in order
  std::array<Request*, kMaxInFlight + 1> slots_{};  // in flight, by transaction id % 256
  size_t in_flight_ = 0;
  std::vector<ReadBatch*> finished_, delivering_;  // batches whose last request is done
  std::vector<uint8_t> out_;                       // frames waiting for the socket
  std::vector<uint8_t> wbuf_;                      // the write in progress
  std::vector<uint8_t> rbuf_;                      // received, not yet parsed
  size_t have_ = 0;                                // bytes in rbuf_
  bool writing_ = false, write_posted_ = false;
  Timer sweep_;  // the earliest deadline of anything queued or in flight
  Clock::time_point sweep_at_ = Clock::time_point::max();
  Clock::time_point last_rx_{};
  Clock::time_point reconnect_at_{};  // no connect before this (after a failed one)
  int connect_failures_in_a_row_ = 0;
  std::string connect_error_;  // why the last connect failed
  std::minstd_rand rng_;       // backoff jitter, seeded from the endpoint's name
  bool deliver_posted_ = false;
  LinkStats stats_;
};

}  // namespace sitepower::modbus
