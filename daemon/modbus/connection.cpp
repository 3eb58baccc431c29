#include "modbus/connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cstring>
#include <functional>

#include "modbus/schedule.hpp"

namespace sitepower::modbus {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;

namespace {

std::string Where(uint8_t unit, const ReadBlock& b) {
  return "unit " + std::to_string(unit) + " fc " + std::to_string(static_cast<int>(b.fc)) +
         " register " + std::to_string(b.address) + "+" + std::to_string(b.count);
}

constexpr size_t kSlotMask = Connection::kMaxInFlight;  // 255: slots_ has 256 entries

}  // namespace

Connection::Connection(asio::io_context::executor_type ex, std::string host, uint16_t port,
                       size_t max_in_flight, core::Millis connect_timeout)
    : ex_(ex),
      host_(std::move(host)),
      port_(port),
      name_(host_ + ":" + std::to_string(port_)),
      max_in_flight_(std::clamp<size_t>(max_in_flight, 1, kMaxInFlight)),
      connect_timeout_(connect_timeout),
      socket_(ex),
      rbuf_(16 * 1024),
      sweep_(ex),
      rng_(static_cast<unsigned>(std::hash<std::string>()(name_))) {}

awaitable<core::Result<std::vector<uint16_t>>> Connection::Transact(uint8_t unit, ReadBlock b,
                                                                    core::Millis timeout) {
  std::vector<std::vector<uint16_t>> out;
  const ReadBlock blocks[1] = {b};
  core::Status st = co_await TransactAll(unit, blocks, timeout, &out);
  if (!st.ok()) co_return st;
  co_return std::move(out[0]);
}

awaitable<core::Status> Connection::TransactAll(uint8_t unit, std::span<const ReadBlock> blocks,
                                                core::Millis timeout,
                                                std::vector<std::vector<uint16_t>>* out) {
  auto self = shared_from_this();
  ReadBatch batch;
  batch.unit = unit;
  batch.blocks = blocks;
  batch.timeout = timeout;
  asio::steady_timer wake(ex_);
  wake.expires_at(asio::steady_timer::time_point::max());
  bool done = false;
  batch.on_done = [&done, &wake](ReadBatch&) {
    done = true;
    wake.cancel();
  };
  // Unlinks the batch if this frame goes away first (io_context destroyed).
  struct Guard {
    Connection* c;
    ReadBatch* b;
    const bool* done;
    ~Guard() {
      if (!*done) c->Forget(b);
    }
  } guard{this, &batch, &done};
  Submit(&batch);
  while (!done) {
    boost::system::error_code ec;
    co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  *out = std::move(batch.data);
  co_return batch.status;
}

bool Connection::Submit(ReadBatch* b) {
  const size_t n = b->blocks.size();
  b->status = core::Status::Ok();
  b->data.resize(n);
  b->requests.resize(n);
  b->remaining = n;
  if (state_ == State::kShutdown || n == 0) {
    for (auto& r : b->requests) r.state = ReadBatch::Request::State::kDone;
    b->remaining = 0;
    if (n > 0) b->status = core::Status::Unavailable(name_ + ": poller stopped");
    finished_.push_back(b);
    PostDeliver();  // handed back after this turn, never from inside Submit
    return true;
  }
  const auto now = Clock::now();
  b->queue_deadline = now + b->timeout * 5;
  for (size_t i = 0; i < n; ++i) {
    Request& r = b->requests[i];
    r.batch = b;
    r.index = i;
    r.state = ReadBatch::Request::State::kQueued;
    r.status = core::Status::Ok();
    queue_.push_back(&r);
  }
  stats_.requests += n;
  ArmSweep(b->queue_deadline);
  Pump();
  return true;
}

void Connection::Complete(Request* r, core::Status status) {
  r->state = ReadBatch::Request::State::kDone;
  r->status = std::move(status);
  ReadBatch* b = r->batch;
  if (--b->remaining > 0) return;
  for (const Request& q : b->requests)
    if (!q.status.ok()) {
      b->status = q.status.WithContext(Where(b->unit, b->blocks[q.index]));
      break;
    }
  finished_.push_back(b);
}

void Connection::Deliver() {
  while (!finished_.empty()) {
    delivering_.swap(finished_);
    for (ReadBatch* b : delivering_) {
      auto owner = std::move(b->owner);  // the batch lives at least until on_done returns
      b->on_done(*b);
    }
    delivering_.clear();
  }
}

void Connection::PostDeliver() {
  if (deliver_posted_ || finished_.empty()) return;
  deliver_posted_ = true;
  asio::post(ex_, [self = shared_from_this()]() {
    self->deliver_posted_ = false;
    self->Deliver();
  });
}

void Connection::Forget(ReadBatch* b) {
  for (Request& r : b->requests) {
    if (r.state == ReadBatch::Request::State::kQueued) {
      queue_.erase(std::remove(queue_.begin(), queue_.end(), &r), queue_.end());
    } else if (r.state == ReadBatch::Request::State::kSent && slots_[r.tid & kSlotMask] == &r) {
      slots_[r.tid & kSlotMask] = nullptr;
      --in_flight_;
    }
    r.state = ReadBatch::Request::State::kIdle;
  }
  finished_.erase(std::remove(finished_.begin(), finished_.end(), b), finished_.end());
}

void Connection::Expire(Request* r) {
  slots_[r->tid & kSlotMask] = nullptr;
  --in_flight_;
  ++stats_.timeouts;
  // Nothing at all came back since this was sent: the link (not just one
  // unit behind it) is gone, e.g. half-open. Start over.
  const bool silent = last_rx_ < r->sent_at;
  const std::string ms = std::to_string(r->batch->timeout.count());
  Complete(r, core::Status::DeadlineExceeded("no answer within " + ms +
                                             " ms"));  // a late reply is dropped as unknown
  if (silent)
    Close("no reply to anything for " + ms + " ms");
  else
    Pump();
}

void Connection::ArmSweep(Clock::time_point deadline) {
  if (deadline >= sweep_at_ || state_ == State::kShutdown) return;
  sweep_at_ = deadline;
  sweep_.expires_at(deadline);  // cancels an earlier wait; its handler sees operation_aborted
  sweep_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec != asio::error::operation_aborted) self->Sweep();
  });
}

void Connection::Sweep() {
  sweep_at_ = Clock::time_point::max();
  const auto now = Clock::now();
  // Requests that waited in the queue past their allowance (oldest first).
  while (!queue_.empty() && queue_.front()->batch->queue_deadline <= now) {
    Request* r = queue_.front();
    queue_.pop_front();
    ++stats_.timeouts;
    const auto ms = r->batch->timeout.count();
    Complete(r, core::Status::DeadlineExceeded("no answer within " + std::to_string(ms) +
                                               " ms (not sent: " + name_ + " busy or connecting)"));
  }
  std::array<Request*, kMaxInFlight + 1> expired;
  size_t n = 0;
  for (Request* r : slots_)
    if (r && r->deadline <= now) expired[n++] = r;
  for (size_t i = 0; i < n; ++i)
    if (expired[i]->state == ReadBatch::Request::State::kSent &&
        slots_[expired[i]->tid & kSlotMask] == expired[i])
      Expire(expired[i]);  // may close the link, which fails the rest
  auto next = Clock::time_point::max();
  for (Request* r : slots_)
    if (r) next = std::min(next, r->deadline);
  if (!queue_.empty()) next = std::min(next, queue_.front()->batch->queue_deadline);
  if (next != Clock::time_point::max()) ArmSweep(next);
  Deliver();
}

void Connection::Pump() {
  if (state_ == State::kShutdown || queue_.empty()) return;
  if (state_ == State::kClosed) {
    if (const auto now = Clock::now(); now < reconnect_at_) {
      // Backing off after a failed connect: fail at once, do not knock again.
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(reconnect_at_ - now);
      const core::Status why =
          core::Status::Unavailable("connect " + name_ + ": " + connect_error_ +
                                    " (next attempt in " + std::to_string(wait.count()) + " ms)");
      while (!queue_.empty()) {
        Request* r = queue_.front();
        queue_.pop_front();
        Complete(r, why);
      }
      PostDeliver();
      return;
    }
    state_ = State::kConnecting;
    asio::co_spawn(ex_, ConnectLoop(shared_from_this()), asio::detached);
    return;
  }
  if (state_ != State::kOpen || in_flight_ >= max_in_flight_) return;
  const auto now = Clock::now();
  while (!queue_.empty() && in_flight_ < max_in_flight_) {
    Request* r = queue_.front();
    queue_.pop_front();
    while (slots_[next_tid_ & kSlotMask]) ++next_tid_;  // a free slot exists: in_flight_ < 256
    r->tid = next_tid_++;
    r->state = ReadBatch::Request::State::kSent;
    r->sent_at = now;
    r->deadline = now + r->batch->timeout;
    slots_[r->tid & kSlotMask] = r;
    ++in_flight_;
    const ReadBlock& b = r->batch->blocks[r->index];
    AppendReadRequest(&out_, r->tid, r->batch->unit, b.fc, b.address, b.count);
    ArmSweep(r->deadline);
  }
  stats_.max_in_flight_seen = std::max(stats_.max_in_flight_seen, in_flight_);
  // Write after this turn of the event loop: every request queued in it goes
  // out in one system call.
  if (!writing_ && !write_posted_ && !out_.empty()) {
    write_posted_ = true;
    asio::post(ex_, [self = shared_from_this(), gen = generation_]() {
      self->write_posted_ = false;
      if (gen == self->generation_) self->StartWrite();
    });
  }
}

void Connection::StartWrite() {
  if (writing_ || out_.empty() || state_ != State::kOpen) return;
  wbuf_.swap(out_);
  out_.clear();
  writing_ = true;
  asio::async_write(
      socket_, asio::buffer(wbuf_),
      [self = shared_from_this(), gen = generation_](const boost::system::error_code& ec, size_t) {
        if (gen != self->generation_) return;
        self->writing_ = false;
        self->wbuf_.clear();
        if (ec) {
          self->Close("write: " + ec.message());
          self->Deliver();
          return;
        }
        self->StartWrite();
      });
}

void Connection::FailAll(const core::Status& why) {
  std::vector<Request*> all(queue_.begin(), queue_.end());
  for (Request*& r : slots_)
    if (r) {
      all.push_back(r);
      r = nullptr;
    }
  queue_.clear();
  in_flight_ = 0;
  for (Request* r : all) Complete(r, why);
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
  out_.clear();
  wbuf_ = {};  // the aborted write no longer uses it
  writing_ = false;
  have_ = 0;
  FailAll(core::Status::Unavailable(name_ + ": " + why));
}

void Connection::Shutdown() {
  if (state_ == State::kShutdown) return;
  Teardown("poller stopped");
  state_ = State::kShutdown;
  sweep_.cancel();
  sweep_at_ = Clock::time_point::max();
  Deliver();
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
    connect_error_ = what;
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    reconnect_at_ = Clock::now() + Backoff(++connect_failures_in_a_row_, core::Millis(250),
                                           core::Millis(30000), unit(rng_), /*max_doublings=*/16);
    FailAll(core::Status::Unavailable("connect " + name_ + ": " + what));
    Deliver();
    co_return;
  }
  socket_.set_option(tcp::no_delay(true), ec);
  state_ = State::kOpen;
  ++stats_.connects;
  connect_failures_in_a_row_ = 0;
  reconnect_at_ = {};
  last_rx_ = Clock::now();
  have_ = 0;
  StartRead(gen);
  Pump();
}

void Connection::StartRead(uint64_t gen) {
  if (have_ == rbuf_.size()) rbuf_.resize(rbuf_.size() * 2);  // a frame is at most 260 bytes
  socket_.async_read_some(asio::buffer(rbuf_.data() + have_, rbuf_.size() - have_),
                          [self = shared_from_this(), gen](const boost::system::error_code& ec,
                                                           size_t n) { self->OnRead(gen, ec, n); });
}

// Takes every complete frame out of what has arrived (one receive for many
// replies under load), then hands the finished polls back.
void Connection::OnRead(uint64_t gen, const boost::system::error_code& ec, size_t n) {
  if (gen != generation_) return;
  if (ec) {
    Close(ec == asio::error::eof ? "closed by the device" : "read: " + ec.message());
    Deliver();
    return;
  }
  have_ += n;
  last_rx_ = Clock::now();
  size_t at = 0;
  while (have_ - at >= kMbapHeaderSize) {
    auto h = DecodeMbapHeader(std::span<const uint8_t>(rbuf_.data() + at, kMbapHeaderSize));
    if (!h.ok()) {  // the byte stream cannot be trusted any more
      Close(h.status().message());
      Deliver();
      return;
    }
    const size_t frame = kMbapHeaderSize + h->length - 1u;
    if (have_ - at < frame) break;  // the rest of it is still on its way
    OnFrame(*h,
            std::span<const uint8_t>(rbuf_.data() + at + kMbapHeaderSize, frame - kMbapHeaderSize));
    at += frame;
  }
  if (at > 0) {
    std::memmove(rbuf_.data(), rbuf_.data() + at, have_ - at);
    have_ -= at;
  }
  Pump();
  Deliver();  // may submit the next polls, or even shut the link down
  if (gen == generation_) StartRead(gen);
}

void Connection::OnFrame(const MbapHeader& h, std::span<const uint8_t> pdu) {
  Request* r = slots_[h.transaction_id & kSlotMask];
  if (!r || r->tid != h.transaction_id || r->state != ReadBatch::Request::State::kSent) {
    ++stats_.late_replies;  // its request already timed out
    return;
  }
  slots_[h.transaction_id & kSlotMask] = nullptr;
  --in_flight_;
  ++stats_.answers;
  ReadBatch* b = r->batch;
  if (h.unit != b->unit) {
    Complete(r, core::Status::InvalidArgument(
                    "reply for transaction " + std::to_string(h.transaction_id) + " from unit " +
                    std::to_string(h.unit) + ", sent to unit " + std::to_string(b->unit)));
    return;
  }
  const ReadBlock& blk = b->blocks[r->index];
  Complete(r, DecodeReadResponseInto(pdu, blk.fc, blk.count, &b->data[r->index]));
}

}  // namespace sitepower::modbus
