#include "modbus/rtu_link.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <termios.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/serial_port.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "modbus/rtu_codec.hpp"
#include "modbus/schedule.hpp"

namespace sitepower::modbus {

namespace asio = boost::asio;
using asio::awaitable;
using boost::system::error_code;

namespace {

std::string Ms(core::Millis d) { return std::to_string(d.count()) + " ms"; }

}  // namespace

std::string DescribeLine(const SerialLine& l) {
  return std::to_string(l.baud) + " " + std::to_string(l.data_bits) + l.parity +
         std::to_string(l.stop_bits);
}

// --- byte streams --------------------------------------------------------------

class RtuLink::Stream {
 public:
  virtual ~Stream() = default;
  // Never throws; bounded (a TCP connect by its timeout, a serial open does not block).
  virtual awaitable<core::Status> Open() = 0;
  virtual awaitable<size_t> ReadSome(asio::mutable_buffer b, error_code& ec) = 0;
  virtual awaitable<void> Write(asio::const_buffer b, error_code& ec) = 0;
  virtual void Cancel() = 0;  // a pending read or write ends with operation_aborted
  virtual void Close() = 0;
};

class RtuLink::SerialStream final : public RtuLink::Stream {
 public:
  SerialStream(asio::any_io_executor ex, SerialLine line) : port_(ex), line_(std::move(line)) {}

  awaitable<core::Status> Open() override { co_return OpenNow(); }

  awaitable<size_t> ReadSome(asio::mutable_buffer b, error_code& ec) override {
    co_return co_await port_.async_read_some(b, asio::redirect_error(asio::use_awaitable, ec));
  }
  awaitable<void> Write(asio::const_buffer b, error_code& ec) override {
    co_await asio::async_write(port_, b, asio::redirect_error(asio::use_awaitable, ec));
  }
  void Cancel() override {
    error_code ignored;
    port_.cancel(ignored);
  }
  void Close() override {
    error_code ignored;
    port_.close(ignored);
  }

 private:
  // Asio opens the device O_NONBLOCK and raw; the line settings go through termios.
  core::Status OpenNow() {
    using base = asio::serial_port_base;
    error_code ec;
    port_.open(line_.device, ec);
    if (ec) return core::Status::Unavailable("open " + line_.device + ": " + ec.message());
    // Exclusive: a second opener (another poller, a stray minicom) gets EBUSY
    // instead of interleaving its frames with ours on the same wire.
    if (::ioctl(port_.native_handle(), TIOCEXCL) != 0) {
      const std::string why = std::strerror(errno);
      Close();
      return core::Status::Unavailable("lock " + line_.device + " (TIOCEXCL): " + why);
    }
    const auto parity = line_.parity == 'E'   ? base::parity::even
                        : line_.parity == 'O' ? base::parity::odd
                                              : base::parity::none;
    port_.set_option(base::baud_rate(static_cast<unsigned>(line_.baud)), ec);
    if (!ec) port_.set_option(base::character_size(static_cast<unsigned>(line_.data_bits)), ec);
    if (!ec) port_.set_option(base::parity(parity), ec);
    if (!ec)
      port_.set_option(
          base::stop_bits(line_.stop_bits == 2 ? base::stop_bits::two : base::stop_bits::one), ec);
    if (!ec) port_.set_option(base::flow_control(base::flow_control::none), ec);
    if (ec) {
      Close();
      return core::Status::Unavailable("configure " + line_.device + " at " + DescribeLine(line_) +
                                       ": " + ec.message());
    }
    ::tcflush(port_.native_handle(), TCIOFLUSH);  // what an earlier session left behind
    return core::Status::Ok();
  }

  asio::serial_port port_;
  SerialLine line_;
};

class RtuLink::TcpStream final : public RtuLink::Stream {
 public:
  TcpStream(asio::any_io_executor ex, std::string host, uint16_t port, core::Millis timeout)
      : ex_(ex), host_(std::move(host)), port_(port), timeout_(timeout), socket_(ex) {}

  awaitable<core::Status> Open() override {
    const std::string name = host_ + ":" + std::to_string(port_);
    error_code ec;
    asio::ip::tcp::resolver resolver(ex_);
    auto endpoints = co_await resolver.async_resolve(host_, std::to_string(port_),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return core::Status::Unavailable("resolve " + name + ": " + ec.message());
    auto timed_out = std::make_shared<bool>(false);
    asio::steady_timer deadline(ex_);
    deadline.expires_after(timeout_);
    deadline.async_wait([this, timed_out](const error_code& e) {
      if (e) return;  // cancelled: connected or failed in time (`this` is not touched)
      *timed_out = true;
      Close();
    });
    co_await asio::async_connect(socket_, endpoints, asio::redirect_error(asio::use_awaitable, ec));
    deadline.cancel();
    if (*timed_out) ec = asio::error::timed_out;
    if (ec) {
      Close();
      co_return core::Status::Unavailable("connect " + name + ": " + ec.message());
    }
    error_code ignored;
    socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
    // A gateway that vanished without a FIN is found within about 25 s even
    // when every unit behind it is polled rarely.
    socket_.set_option(asio::socket_base::keep_alive(true), ignored);
    const int idle = 10, interval = 5, count = 3;
    ::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    ::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    co_return core::Status::Ok();
  }
  awaitable<size_t> ReadSome(asio::mutable_buffer b, error_code& ec) override {
    co_return co_await socket_.async_read_some(b, asio::redirect_error(asio::use_awaitable, ec));
  }
  awaitable<void> Write(asio::const_buffer b, error_code& ec) override {
    co_await asio::async_write(socket_, b, asio::redirect_error(asio::use_awaitable, ec));
  }
  void Cancel() override {
    error_code ignored;
    socket_.cancel(ignored);
  }
  void Close() override {
    error_code ignored;
    socket_.close(ignored);
  }

 private:
  asio::any_io_executor ex_;
  std::string host_;
  uint16_t port_;
  core::Millis timeout_;
  asio::ip::tcp::socket socket_;
};

// --- the bus -----------------------------------------------------------------

// One request, living on its Transact coroutine's frame. It unlinks itself
// when that frame goes, so the bus never holds a dangling pointer.
struct RtuLink::Pending {
  Pending(RtuLink* l, uint8_t u, ReadBlock b, core::Millis t)
      : owner(l), wake(l->ex_), unit(u), block(b), timeout(t) {}
  ~Pending() {
    auto& q = owner->queue_;
    q.erase(std::remove(q.begin(), q.end(), this), q.end());
    if (owner->current_ == this) owner->current_ = nullptr;
  }
  RtuLink* owner;
  asio::steady_timer wake;  // the queueing deadline; then a backstop; cancelled when done
  uint8_t unit;
  ReadBlock block;
  core::Millis timeout;
  bool taken = false, done = false;
  bool rearmed = false;  // the timer moved when the bus took the request
  core::Result<std::vector<uint8_t>> pdu = core::Status::Internal("no reply yet");
};

RtuLink::RtuLink(asio::any_io_executor ex, Kind kind, std::string name, SerialLine line,
                 std::unique_ptr<Stream> stream, RtuOptions options)
    : ex_(ex),
      kind_(kind),
      name_(std::move(name)),
      line_(std::move(line)),
      bits_per_char_(RtuBitsPerChar(line_.data_bits, line_.parity, line_.stop_bits)),
      gap_(RtuInterFrameGap(line_.baud, bits_per_char_)),
      options_(options),
      stream_(std::move(stream)),
      rx_signal_(ex),
      pace_(ex),
      write_guard_(ex),
      rng_(static_cast<unsigned>(std::hash<std::string>()(name_))) {}

RtuLink::~RtuLink() = default;

std::shared_ptr<RtuLink> RtuLink::Serial(asio::any_io_executor ex, SerialLine line,
                                         RtuOptions options) {
  auto stream = std::make_unique<SerialStream>(ex, line);
  std::string name = "rtu:" + line.device;
  return std::shared_ptr<RtuLink>(
      new RtuLink(ex, Kind::kSerial, std::move(name), std::move(line), std::move(stream), options));
}

std::shared_ptr<RtuLink> RtuLink::OverTcp(asio::any_io_executor ex, std::string host, uint16_t port,
                                          SerialLine line, RtuOptions options) {
  std::string name = "rtu+tcp://" + host + ":" + std::to_string(port);
  auto stream = std::make_unique<TcpStream>(ex, std::move(host), port, options.connect_timeout);
  return std::shared_ptr<RtuLink>(new RtuLink(ex, Kind::kTcpGateway, std::move(name),
                                              std::move(line), std::move(stream), options));
}

std::chrono::nanoseconds RtuLink::Wire(size_t bytes) const {
  return RtuWireTime(bytes, line_.baud, bits_per_char_);
}

awaitable<core::Result<std::vector<uint16_t>>> RtuLink::Transact(uint8_t unit, ReadBlock b,
                                                                 core::Millis timeout) {
  const std::string where = "unit " + std::to_string(unit) + " fc " +
                            std::to_string(static_cast<int>(b.fc)) + " register " +
                            std::to_string(b.address) + "+" + std::to_string(b.count);
  if (state_ == State::kShutdown)
    co_return core::Status::Unavailable(name_ + " " + where + ": poller stopped");
  if (unit == 0 || unit > kRtuMaxUnit)
    co_return core::Status::InvalidArgument(
        name_ + " " + where + ": RTU unit ids are 1-247 (0 is broadcast: nobody answers a read)");
  const auto now = Clock::now();
  if (state_ == State::kClosed && now < retry_at_) {
    const auto wait = std::chrono::ceil<core::Millis>(retry_at_ - now);
    co_return core::Status::Unavailable(name_ + " " + where + ": " + last_error_ +
                                        " (reopening in " + Ms(wait) + ")");
  }
  auto self = shared_from_this();  // outlives the Pending below
  Pending p(this, unit, b, timeout);
  // The unit gets `timeout` from when the request is on the wire; waiting
  // behind other units on a busy bus is allowed up to 4 timeouts more.
  p.wake.expires_after(timeout * 4);
  queue_.push_back(&p);
  ++stats_.requests;
  if (!running_) {
    running_ = true;
    asio::co_spawn(ex_, Run(self), asio::detached);
  }
  while (!p.done) {
    error_code ec;
    co_await p.wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (p.rearmed && !p.done) {
      p.rearmed = false;  // woken by the re-arm when the bus took it: wait for the exchange
      continue;
    }
    break;
  }
  if (!p.done) {
    ++stats_.timeouts;
    if (!p.taken) {
      ++rtu_stats_.not_sent;
      co_return core::Status::DeadlineExceeded(where + ": no answer within " + Ms(timeout) +
                                               " (not sent: " + name_ + " busy for " +
                                               Ms(timeout * 4) + ")");
    }
    // The exchange overran its own deadline: cannot happen unless the loop
    // is stuck; give up on it (the loop sees current_ gone).
    co_return core::Status::DeadlineExceeded(where + ": no answer within " + Ms(timeout));
  }
  if (!p.pdu.ok()) co_return p.pdu.status().WithContext(where);
  auto values = DecodeReadResponse(*p.pdu, b.fc, b.count);
  if (!values.ok()) co_return values.status().WithContext(where);
  co_return values;
}

// Works the queue, one request at a time, until it is empty.
awaitable<void> RtuLink::Run(std::shared_ptr<RtuLink> self) {
  while (state_ != State::kShutdown && !queue_.empty()) {
    if (state_ == State::kClosed) {
      if (Clock::now() < retry_at_) {
        FailQueued(core::Status::Unavailable(name_ + ": " + last_error_));
        break;
      }
      co_await Open(self);
      continue;  // opened, failed (the queue was failed), or shut down
    }
    // Silence before the request: the inter-frame gap since the line's last
    // activity either way.
    co_await WaitQuiet(gap_);
    if (state_ != State::kOpen || queue_.empty()) continue;
    Pending* p = queue_.front();
    queue_.pop_front();
    co_await Exchange(p);
  }
  running_ = false;
}

awaitable<void> RtuLink::Open(std::shared_ptr<RtuLink> self) {
  state_ = State::kOpening;
  const uint64_t gen = ++generation_;
  core::Status st = co_await stream_->Open();
  if (state_ != State::kOpening || gen != generation_) {  // shut down meanwhile
    if (st.ok()) stream_->Close();
    co_return;
  }
  if (!st.ok()) {
    stream_->Close();
    state_ = State::kClosed;
    ++stats_.connect_failures;
    last_error_ = st.message();
    BackOff();
    FailQueued(core::Status::Unavailable(name_ + ": " + last_error_));
    co_return;
  }
  state_ = State::kOpen;
  ++stats_.connects;
  replied_since_open_ = false;
  silent_timeouts_ = 0;
  rx_.clear();
  awaiting_ = false;
  last_rx_ = Clock::now();  // a fresh line: a gap before the first request
  asio::co_spawn(ex_, ReadLoop(self, gen), asio::detached);
}

// Takes whatever arrives: the current request's reply, or bytes nobody asked
// for (a late reply, noise), which are counted and dropped.
awaitable<void> RtuLink::ReadLoop(std::shared_ptr<RtuLink> self, uint64_t gen) {
  std::array<uint8_t, 512> buf;
  while (gen == generation_) {
    error_code ec;
    const size_t n = co_await stream_->ReadSome(asio::buffer(buf), ec);
    if (gen != generation_) co_return;
    if (ec) {
      const char* peer = kind_ == Kind::kSerial ? "device" : "gateway";
      self->Drop(ec == asio::error::eof ? std::string("closed by the ") + peer
                                        : "read: " + ec.message());
      co_return;
    }
    const auto now = Clock::now();
    if (awaiting_ && rx_.size() < kRtuMaxAduSize) {
      rx_.insert(rx_.end(), buf.begin(), buf.begin() + static_cast<long>(n));
      rx_signal_.cancel();
    } else {
      rtu_stats_.discarded_bytes += n;
      if (now - last_rx_ > gap_) ++stats_.late_replies;  // a new burst nobody asked for
    }
    last_rx_ = now;
  }
}

awaitable<void> RtuLink::Exchange(Pending* p) {
  current_ = p;
  p->taken = true;
  const uint8_t unit = p->unit;
  const ReadBlock b = p->block;
  const core::Millis timeout = p->timeout;
  const std::vector<uint8_t> frame = EncodeRtuReadRequest(unit, b.fc, b.address, b.count);
  RtuReplyFramer framer(unit, b.fc, b.count);
  const auto reply_wire = Wire(framer.reply_size());
  const auto start = Clock::now();
  // From here the bus finishes the request; the waiter keeps a backstop only.
  p->wake.expires_at(start + Wire(frame.size()) + 2 * timeout + reply_wire +
                     std::chrono::seconds(1));
  p->rearmed = true;
  stats_.max_in_flight_seen = 1;
  rx_.clear();
  awaiting_ = true;
  const uint64_t gen = generation_;
  const error_code ec = co_await WriteBounded(frame, start + timeout);
  if (gen != generation_ || state_ != State::kOpen) co_return;  // closed: current_ was failed
  if (ec) {
    Drop("write: " + ec.message());
    co_return;
  }
  // On the wire once its last character is out (a serial write returns when
  // the bytes are in the driver's buffer).
  const auto on_wire = std::max(Clock::now(), start + Wire(frame.size()));
  line_busy_until_ = on_wire;
  const auto deadline = on_wire + timeout + reply_wire;
  size_t fed = 0;  // rx_ bytes framed or skipped
  int strays = 0;
  uint8_t stray_unit = 0;
  for (;;) {
    // A whole, valid frame from another unit before ours starts is the late
    // reply of a slow unit: skip it and keep listening for ours.
    bool partial_stray = false;
    while (framer.received() == 0 && fed < rx_.size() && rx_[fed] != unit) {
      const auto scan = ScanRtuReply(std::span<const uint8_t>(rx_).subspan(fed));
      if (scan.state == RtuFrameScan::State::kNotAFrame) break;  // garbage: the framer says why
      if (scan.state == RtuFrameScan::State::kNeedMore) {
        partial_stray = true;
        break;
      }
      fed += scan.size;
      ++strays;
      stray_unit = scan.unit;
      ++stats_.late_replies;
      rtu_stats_.discarded_bytes += scan.size;
    }
    const bool late = Clock::now() >= deadline;
    if (fed < rx_.size() && (!partial_stray || late)) {
      framer.Feed(std::span<const uint8_t>(rx_).subspan(fed));
      fed = rx_.size();
    }
    if (framer.state() != RtuReplyFramer::State::kNeedMore || late) break;
    rx_signal_.expires_at(deadline);
    error_code wait_ec;
    co_await rx_signal_.async_wait(asio::redirect_error(asio::use_awaitable, wait_ec));
    if (gen != generation_ || state_ != State::kOpen) co_return;
  }
  awaiting_ = false;
  const bool heard = !rx_.empty();
  rtu_stats_.discarded_bytes += framer.ignored();
  core::Result<std::vector<uint8_t>> result = core::Status::Internal("no reply");
  bool settle = true;
  switch (framer.state()) {
    case RtuReplyFramer::State::kComplete:
      ++stats_.answers;  // data or a Modbus exception
      result = std::vector<uint8_t>(framer.pdu().begin(), framer.pdu().end());
      settle = framer.ignored() > 0;  // noise after the frame: let it pass first
      break;
    case RtuReplyFramer::State::kGarbage:
      ++rtu_stats_.garbage;
      result = core::Status::InvalidArgument(framer.Describe());
      break;
    case RtuReplyFramer::State::kNeedMore:
      if (framer.received() > 0) {
        ++rtu_stats_.garbage;
        result = core::Status::InvalidArgument(framer.Describe() + " within " + Ms(timeout));
      } else {
        result = core::Status::DeadlineExceeded(
            "no answer within " + Ms(timeout) +
            (strays ? " (skipped a late reply from unit " + std::to_string(stray_unit) + ")" : ""));
      }
      break;
  }
  if (heard) {  // something came back: the line (and the stream) work
    replied_since_open_ = true;
    failures_ = 0;
    silent_timeouts_ = 0;
  } else {
    ++silent_timeouts_;
  }
  if (current_) {
    if (result.status().code() == core::Status::Code::kDeadlineExceeded) ++stats_.timeouts;
    Finish(current_, std::move(result));
    current_ = nullptr;
  }
  if (!settle) co_return;
  if (kind_ == Kind::kTcpGateway && silent_timeouts_ >= options_.silent_timeouts_to_reconnect) {
    Drop("no byte back for " + std::to_string(silent_timeouts_) + " requests in a row");
    co_return;
  }
  // A late or broken reply may still be on its way: give it `settle` from
  // now (longer while bytes keep coming) and drop what came, so that it is
  // not taken for the next answer.
  line_busy_until_ = std::max(line_busy_until_, Clock::now());
  co_await WaitQuiet(std::max<std::chrono::nanoseconds>(options_.settle, gap_));
}

awaitable<error_code> RtuLink::WriteBounded(const std::vector<uint8_t>& frame,
                                            Clock::time_point deadline) {
  const uint64_t gen = generation_;
  auto timed_out = std::make_shared<bool>(false);
  write_guard_.expires_at(deadline);
  write_guard_.async_wait([self = shared_from_this(), gen, timed_out](const error_code& e) {
    if (e || gen != self->generation_) return;
    *timed_out = true;
    self->stream_->Cancel();
  });
  error_code ec;
  co_await stream_->Write(asio::buffer(frame), ec);
  write_guard_.cancel();
  if (*timed_out) ec = asio::error::timed_out;
  co_return ec;
}

// Waits until neither side has used the line for `quiet`. Bytes arriving
// meanwhile are nobody's (ReadLoop drops them) and push the quiet time back;
// a line that never goes quiet is given up on after settle_limit.
awaitable<void> RtuLink::WaitQuiet(std::chrono::nanoseconds quiet) {
  const uint64_t gen = generation_;
  const auto give_up = Clock::now() + options_.settle_limit;
  for (;;) {
    const auto quiet_at = std::max(last_rx_, line_busy_until_) + quiet;
    const auto now = Clock::now();
    if (now >= quiet_at || now >= give_up) co_return;
    pace_.expires_at(std::min(quiet_at, give_up));
    error_code ec;
    co_await pace_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (gen != generation_ || state_ == State::kShutdown) co_return;
  }
}

void RtuLink::Finish(Pending* p, core::Result<std::vector<uint8_t>> pdu) {
  p->pdu = std::move(pdu);
  p->done = true;
  p->wake.cancel();
}

void RtuLink::FailQueued(const core::Status& why) {
  std::deque<Pending*> all;
  all.swap(queue_);
  for (Pending* p : all) Finish(p, why);
}

void RtuLink::BackOff() {
  ++failures_;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  retry_at_ = Clock::now() + Backoff(failures_, options_.reopen_min, options_.reopen_max,
                                     unit(rng_), /*max_doublings=*/16);
}

void RtuLink::Close(const std::string& why) {
  ++generation_;
  state_ = State::kClosed;
  stream_->Close();
  awaiting_ = false;
  rx_.clear();
  last_error_ = why;
  rx_signal_.cancel();
  pace_.cancel();
  write_guard_.cancel();
  if (current_) {
    Finish(current_, core::Status::Unavailable(name_ + ": " + why));
    current_ = nullptr;
  }
}

void RtuLink::Drop(const std::string& why) {
  if (state_ != State::kOpen) return;
  ++stats_.drops;
  const bool was_useful = replied_since_open_;
  Close(why);
  // A stream that answered before it failed is reopened at once; one that
  // gave nothing counts as a failed open.
  if (was_useful)
    retry_at_ = Clock::now();
  else
    BackOff();
}

void RtuLink::Shutdown() {
  if (state_ == State::kShutdown) return;
  Close("poller stopped");
  state_ = State::kShutdown;
  FailQueued(core::Status::Unavailable(name_ + ": poller stopped"));
}

std::shared_ptr<Link> MakeRtuLink(asio::any_io_executor ex, const DeviceSpec& spec,
                                  core::Millis connect_timeout) {
  RtuOptions options;
  options.connect_timeout = connect_timeout;
  options.settle = spec.rtu_settle;
  options.reopen_min = spec.rtu_backoff_min;
  options.reopen_max = std::max(spec.rtu_backoff_max, spec.rtu_backoff_min);
  if (spec.transport == Transport::kRtuSerial) return RtuLink::Serial(ex, spec.serial, options);
  return RtuLink::OverTcp(ex, spec.host, spec.port, spec.serial, options);
}

core::Status CheckJoinsBus(const Link& link, const DeviceSpec& spec) {
  const auto* bus = dynamic_cast<const RtuLink*>(&link);
  if (!bus) return core::Status::Ok();
  const SerialLine& a = bus->line();
  const SerialLine& b = spec.serial;
  if (a.baud == b.baud && a.parity == b.parity && a.data_bits == b.data_bits &&
      a.stop_bits == b.stop_bits)
    return core::Status::Ok();
  return core::Status::InvalidArgument("site " + spec.site + ": " + bus->name() +
                                       " is already polled at " + DescribeLine(a) +
                                       ", this site asks for " + DescribeLine(b));
}

}  // namespace sitepower::modbus
