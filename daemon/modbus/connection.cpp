#include "modbus/connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <cstring>

namespace sitepower::modbus {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;

// One request, living on its Transact coroutine's frame. It unlinks itself
// when that frame goes, so the connection never holds a dangling pointer.
struct Connection::Pending {
  Pending(Connection* c, uint8_t u, ReadBlock b) : owner(c), wake(c->ex_), unit(u), block(b) {}
  ~Pending() {
    auto& q = owner->queue_;
    q.erase(std::remove(q.begin(), q.end(), this), q.end());
    if (auto it = owner->in_flight_.find(tid);
        sent && it != owner->in_flight_.end() && it->second == this)
      owner->in_flight_.erase(it);
  }
  Connection* owner;
  asio::steady_timer wake;  // expires at the deadline; cancelled when done
  uint8_t unit;
  ReadBlock block;
  uint16_t tid = 0;
  bool sent = false, done = false;
  bool rearmed = false;     // the deadline moved when the request went out
  core::Millis timeout{0};  // for the device to answer, from when the request is sent
  Clock::time_point sent_at{};
  core::Result<std::vector<uint8_t>> pdu = core::Status::Internal("no reply yet");
};

Connection::Connection(asio::any_io_executor ex, std::string host, uint16_t port,
                       size_t max_in_flight, core::Millis connect_timeout)
    : ex_(ex),
      host_(std::move(host)),
      port_(port),
      name_(host_ + ":" + std::to_string(port_)),
      max_in_flight_(std::max<size_t>(1, max_in_flight)),
      connect_timeout_(connect_timeout),
      socket_(ex) {}

awaitable<core::Result<std::vector<uint16_t>>> Connection::Transact(uint8_t unit, ReadBlock b,
                                                                    core::Millis timeout) {
  const std::string where = "unit " + std::to_string(unit) + " fc " +
                            std::to_string(static_cast<int>(b.fc)) + " register " +
                            std::to_string(b.address) + "+" + std::to_string(b.count);
  if (state_ == State::kShutdown)
    co_return core::Status::Unavailable(name_ + " " + where + ": poller stopped");
  auto self = shared_from_this();  // outlives the Pending below
  Pending p(this, unit, b);
  // The device gets `timeout` from when the request goes out; waiting behind
  // other units on a busy link is allowed up to 4 timeouts more.
  p.timeout = timeout;
  p.wake.expires_after(timeout * 5);
  queue_.push_back(&p);
  ++stats_.requests;
  Pump();
  while (!p.done) {
    boost::system::error_code ec;
    co_await p.wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (p.rearmed && !p.done) {
      p.rearmed = false;  // woken by the re-arm at send time: wait for the device
      continue;
    }
    break;
  }
  if (!p.done) {
    ++stats_.timeouts;
    const bool sent = p.sent;
    const bool silent = sent && last_rx_ < p.sent_at;
    if (sent) in_flight_.erase(p.tid);  // a late reply is dropped as unknown
    // Nothing at all came back since this was sent: the link (not just one
    // unit behind it) is gone, e.g. half-open. Start over.
    if (silent)
      Close("no reply to anything for " + std::to_string(timeout.count()) + " ms");
    else
      Pump();
    co_return core::Status::DeadlineExceeded(
        where + ": no answer within " + std::to_string(timeout.count()) + " ms" +
        (sent ? "" : " (not sent: " + name_ + " busy or connecting)"));
  }
  if (!p.pdu.ok()) co_return p.pdu.status().WithContext(where);
  auto values = DecodeReadResponse(*p.pdu, b.fc, b.count);
  if (!values.ok()) co_return values.status().WithContext(where);
  co_return values;
}

void Connection::Pump() {
  if (state_ == State::kShutdown || queue_.empty()) return;
  if (state_ == State::kClosed) {
    state_ = State::kConnecting;
    asio::co_spawn(ex_, ConnectLoop(shared_from_this()), asio::detached);
    return;
  }
  if (state_ != State::kOpen) return;
  while (!queue_.empty() && in_flight_.size() < max_in_flight_) {
    Pending* p = queue_.front();
    queue_.pop_front();
    while (in_flight_.count(next_tid_)) ++next_tid_;
    p->tid = next_tid_++;
    p->sent = true;
    // Re-arming cancels the pending wait; the waiter sees `rearmed` and waits
    // again, now for the device only.
    p->wake.expires_after(p->timeout);
    p->rearmed = true;
    p->sent_at = Clock::now();
    in_flight_[p->tid] = p;
    outbox_.push_back(
        EncodeReadRequest(p->tid, p->unit, p->block.fc, p->block.address, p->block.count));
  }
  stats_.max_in_flight_seen = std::max(stats_.max_in_flight_seen, in_flight_.size());
  if (!writing_ && !outbox_.empty()) {
    writing_ = true;
    asio::co_spawn(ex_, WriteLoop(shared_from_this(), generation_), asio::detached);
  }
}

void Connection::Finish(Pending* p, core::Result<std::vector<uint8_t>> pdu) {
  p->pdu = std::move(pdu);
  p->done = true;
  p->wake.cancel();
}

void Connection::FailAll(const core::Status& why) {
  std::vector<Pending*> all(queue_.begin(), queue_.end());
  for (auto& [tid, p] : in_flight_) all.push_back(p);
  queue_.clear();
  in_flight_.clear();
  for (Pending* p : all) Finish(p, why);
}

void Connection::Close(const std::string& why) {
  if (state_ == State::kShutdown) return;
  if (state_ == State::kOpen) ++stats_.drops;
  Teardown(why);
}

void Connection::Teardown(const std::string& why) {
  ++generation_;
  state_ = State::kClosed;
  boost::system::error_code ignored;
  socket_.close(ignored);
  outbox_.clear();
  writing_ = false;
  FailAll(core::Status::Unavailable(name_ + ": " + why));
}

void Connection::Shutdown() {
  if (state_ == State::kShutdown) return;
  Teardown("poller stopped");
  state_ = State::kShutdown;
}

awaitable<void> Connection::ConnectLoop(std::shared_ptr<Connection> self) {
  const uint64_t gen = generation_;
  boost::system::error_code ec;
  tcp::resolver resolver(ex_);
  auto endpoints = co_await resolver.async_resolve(host_, std::to_string(port_),
                                                   asio::redirect_error(asio::use_awaitable, ec));
  if (gen != generation_ || state_ != State::kConnecting) co_return;
  std::string what = ec ? "resolve: " + ec.message() : "";
  if (!ec) {
    auto timed_out = std::make_shared<bool>(false);
    asio::steady_timer deadline(ex_);
    deadline.expires_after(connect_timeout_);
    deadline.async_wait([self, timed_out, gen](const boost::system::error_code& e) {
      if (e || gen != self->generation_) return;
      *timed_out = true;
      boost::system::error_code ignored;
      self->socket_.close(ignored);
    });
    co_await asio::async_connect(socket_, endpoints, asio::redirect_error(asio::use_awaitable, ec));
    deadline.cancel();
    if (gen != generation_ || state_ != State::kConnecting) co_return;
    if (*timed_out)
      what = "timed out after " + std::to_string(connect_timeout_.count()) + " ms";
    else if (ec)
      what = ec.message();
  }
  if (!what.empty()) {
    ++stats_.connect_failures;
    boost::system::error_code ignored;
    socket_.close(ignored);
    state_ = State::kClosed;
    FailAll(core::Status::Unavailable("connect " + name_ + ": " + what));
    co_return;
  }
  socket_.set_option(tcp::no_delay(true), ec);
  state_ = State::kOpen;
  ++stats_.connects;
  last_rx_ = Clock::now();
  asio::co_spawn(ex_, ReadLoop(self, gen), asio::detached);
  Pump();
}

awaitable<void> Connection::WriteLoop(std::shared_ptr<Connection> self, uint64_t gen) {
  boost::system::error_code ec;
  while (gen == generation_ && !outbox_.empty()) {
    std::vector<uint8_t> buf;  // every queued request in one write
    for (const auto& frame : outbox_) buf.insert(buf.end(), frame.begin(), frame.end());
    outbox_.clear();
    co_await asio::async_write(socket_, asio::buffer(buf),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (gen != generation_) co_return;
    if (ec) {
      self->Close("write: " + ec.message());
      co_return;
    }
  }
  if (gen == generation_) writing_ = false;
}

// Reads whatever has arrived (one receive for many replies under load) and
// takes every complete frame out of the buffer.
awaitable<void> Connection::ReadLoop(std::shared_ptr<Connection> self, uint64_t gen) {
  std::vector<uint8_t> buf(16 * 1024);
  size_t have = 0;
  boost::system::error_code ec;
  while (gen == generation_) {
    if (have == buf.size()) buf.resize(buf.size() * 2);  // a frame is at most 260 bytes
    size_t n = co_await socket_.async_read_some(asio::buffer(buf.data() + have, buf.size() - have),
                                                asio::redirect_error(asio::use_awaitable, ec));
    if (gen != generation_) co_return;
    if (ec) {
      self->Close(ec == asio::error::eof ? "closed by the device" : "read: " + ec.message());
      co_return;
    }
    have += n;
    last_rx_ = Clock::now();
    size_t at = 0;
    while (have - at >= kMbapHeaderSize) {
      auto h = DecodeMbapHeader(std::span<const uint8_t>(buf.data() + at, kMbapHeaderSize));
      if (!h.ok()) {  // the byte stream cannot be trusted any more
        self->Close(h.status().message());
        co_return;
      }
      const size_t frame = kMbapHeaderSize + h->length - 1u;
      if (have - at < frame) break;  // the rest of it is still on its way
      std::vector<uint8_t> pdu(buf.begin() + static_cast<long>(at + kMbapHeaderSize),
                               buf.begin() + static_cast<long>(at + frame));
      at += frame;
      auto it = in_flight_.find(h->transaction_id);
      if (it == in_flight_.end()) {
        ++stats_.late_replies;  // its request already timed out
        continue;
      }
      Pending* p = it->second;
      in_flight_.erase(it);
      if (h->unit != p->unit)
        Finish(p, core::Status::InvalidArgument(
                      "reply for transaction " + std::to_string(h->transaction_id) + " from unit " +
                      std::to_string(h->unit) + ", sent to unit " + std::to_string(p->unit)));
      else
        Finish(p, std::move(pdu));
    }
    if (at > 0) {
      std::memmove(buf.data(), buf.data() + at, have - at);
      have -= at;
    }
    Pump();
  }
}

}  // namespace sitepower::modbus
