#include "ydt1363/ydt_link.hpp"

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
#include <cstdio>

#include "modbus/schedule.hpp"

namespace sitepower::ydt1363 {

namespace asio = boost::asio;
using asio::awaitable;
using boost::system::error_code;

namespace {

std::string Ms(core::Millis d) { return std::to_string(d.count()) + " ms"; }

std::string Hex2(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", v & 0xFF);
  return buf;
}

}  // namespace

// --- byte streams ------------------------------------------------------------

class YdtLink::Stream {
 public:
  virtual ~Stream() = default;
  // Never throws; bounded (a TCP connect by its timeout, a serial open does not block).
  virtual awaitable<core::Status> Open() = 0;
  virtual awaitable<size_t> ReadSome(asio::mutable_buffer b, error_code& ec) = 0;
  virtual awaitable<void> Write(asio::const_buffer b, error_code& ec) = 0;
  virtual void Close() = 0;
};

class YdtLink::SerialStream final : public YdtLink::Stream {
 public:
  SerialStream(asio::any_io_executor ex, modbus::SerialLine line)
      : port_(ex), line_(std::move(line)) {}

  awaitable<core::Status> Open() override {
    using base = asio::serial_port_base;
    error_code ec;
    port_.open(line_.device, ec);
    if (ec) co_return core::Status::Unavailable("open " + line_.device + ": " + ec.message());
    const auto parity = line_.parity == 'E'   ? base::parity::even
                        : line_.parity == 'O' ? base::parity::odd
                                              : base::parity::none;
    port_.set_option(base::baud_rate(static_cast<unsigned>(line_.baud)), ec);
    if (!ec) port_.set_option(base::character_size(static_cast<unsigned>(line_.data_bits)), ec);
    if (!ec) port_.set_option(base::parity(parity), ec);
    if (!ec)
      port_.set_option(
          base::stop_bits(line_.stop_bits == 2 ? base::stop_bits::two : base::stop_bits::one), ec);
    if (ec) {
      Close();
      co_return core::Status::Unavailable("configure " + line_.device + ": " + ec.message());
    }
    ::tcflush(port_.native_handle(), TCIOFLUSH);  // what an earlier session left behind
    co_return core::Status::Ok();
  }
  awaitable<size_t> ReadSome(asio::mutable_buffer b, error_code& ec) override {
    co_return co_await port_.async_read_some(b, asio::redirect_error(asio::use_awaitable, ec));
  }
  awaitable<void> Write(asio::const_buffer b, error_code& ec) override {
    co_await asio::async_write(port_, b, asio::redirect_error(asio::use_awaitable, ec));
  }
  void Close() override {
    error_code ignored;
    port_.close(ignored);
  }

 private:
  asio::serial_port port_;
  modbus::SerialLine line_;
};

class YdtLink::TcpStream final : public YdtLink::Stream {
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
      if (e) return;  // cancelled: connected or failed in time
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
    socket_.set_option(asio::socket_base::keep_alive(true), ignored);
    co_return core::Status::Ok();
  }
  awaitable<size_t> ReadSome(asio::mutable_buffer b, error_code& ec) override {
    co_return co_await socket_.async_read_some(b, asio::redirect_error(asio::use_awaitable, ec));
  }
  awaitable<void> Write(asio::const_buffer b, error_code& ec) override {
    co_await asio::async_write(socket_, b, asio::redirect_error(asio::use_awaitable, ec));
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

// One request, living on its Transact coroutine's frame; it unlinks itself
// when that frame goes, so the bus never holds a dangling pointer.
struct YdtLink::Pending {
  Pending(YdtLink* l, Frame f, core::Millis t) : owner(l), wake(l->ex_), request(f), timeout(t) {}
  ~Pending() {
    auto& q = owner->queue_;
    q.erase(std::remove(q.begin(), q.end(), this), q.end());
    if (owner->current_ == this) owner->current_ = nullptr;
  }
  YdtLink* owner;
  asio::steady_timer wake;  // the queueing deadline, then a backstop; cancelled when done
  Frame request;
  core::Millis timeout;
  bool taken = false, done = false, rearmed = false;
  core::Result<Frame> reply = core::Status::Internal("no reply yet");
};

YdtLink::YdtLink(asio::any_io_executor ex, std::string name, std::unique_ptr<Stream> stream,
                 LinkOptions options)
    : ex_(ex),
      name_(std::move(name)),
      stream_(std::move(stream)),
      options_(options),
      rx_signal_(ex),
      pace_(ex),
      rng_(static_cast<unsigned>(std::hash<std::string>()(name_))) {}

YdtLink::~YdtLink() = default;

std::shared_ptr<YdtLink> YdtLink::Serial(asio::any_io_executor ex, modbus::SerialLine line,
                                         LinkOptions options) {
  std::string name = "ydt:" + line.device;
  auto stream = std::make_unique<SerialStream>(ex, std::move(line));
  return std::shared_ptr<YdtLink>(new YdtLink(ex, std::move(name), std::move(stream), options));
}

std::shared_ptr<YdtLink> YdtLink::OverTcp(asio::any_io_executor ex, std::string host, uint16_t port,
                                          LinkOptions options) {
  std::string name = "ydt+tcp://" + host + ":" + std::to_string(port);
  auto stream = std::make_unique<TcpStream>(ex, std::move(host), port, options.connect_timeout);
  return std::shared_ptr<YdtLink>(new YdtLink(ex, std::move(name), std::move(stream), options));
}

core::Status YdtLink::Attach(uint8_t adr, const YdtMap* map) {
  auto [it, added] = devices_.emplace(adr, map);
  if (!added && it->second != map)
    return core::Status::InvalidArgument(name_ + ": ADR " + Hex2(adr) + " is polled with map '" +
                                         it->second->name + "' already, not '" + map->name + "'");
  return core::Status::Ok();
}

awaitable<core::Result<std::vector<uint16_t>>> YdtLink::Transact(uint8_t unit, modbus::ReadBlock b,
                                                                 core::Millis timeout) {
  auto dev = devices_.find(unit);
  if (dev == devices_.end())
    co_return core::Status::InvalidArgument(name_ + ": no device attached at ADR " + Hex2(unit));
  const YdtMap& map = *dev->second;
  const Command* cmd = map.CommandAt(b.address);
  if (!cmd || b.address + b.count > cmd->base + cmd->words)
    co_return core::Status::InvalidArgument(name_ + ": registers " + std::to_string(b.address) +
                                            "+" + std::to_string(b.count) +
                                            " are in no command of map '" + map.name + "'");
  Frame request{.ver = map.ver,
                .adr = unit,
                .cid1 = cmd->cid1,
                .cid2 = cmd->cid2,
                .info = cmd->info_is_adr ? std::vector<uint8_t>{unit} : cmd->info};
  const std::string where = "ADR " + Hex2(unit) + " CID1 " + Hex2(cmd->cid1) + " CID2 " +
                            Hex2(cmd->cid2) + " (" + cmd->name + ")";
  if (state_ == State::kShutdown)
    co_return core::Status::Unavailable(name_ + " " + where + ": poller stopped");
  const auto now = Clock::now();
  if (state_ == State::kClosed && now < retry_at_) {
    const auto wait = std::chrono::ceil<core::Millis>(retry_at_ - now);
    co_return core::Status::Unavailable(name_ + " " + where + ": " + last_error_ +
                                        " (reopening in " + Ms(wait) + ")");
  }
  auto self = shared_from_this();  // outlives the Pending below
  Pending p(this, std::move(request), timeout);
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
    if (!p.taken) ++bus_stats_.not_sent;
    co_return core::Status::DeadlineExceeded(
        where + ": no answer within " + Ms(timeout) +
        (p.taken ? "" : " (not sent: " + name_ + " busy for " + Ms(timeout * 4) + ")"));
  }
  if (!p.reply.ok()) co_return p.reply.status().WithContext(where);
  std::vector<uint16_t> regs;
  if (auto st = InfoToRegisters(*cmd, p.reply->info, &regs); !st.ok())
    co_return st.WithContext(where);
  const size_t from = b.address - cmd->base;
  co_return std::vector<uint16_t>(regs.begin() + static_cast<long>(from),
                                  regs.begin() + static_cast<long>(from + b.count));
}

awaitable<void> YdtLink::Run(std::shared_ptr<YdtLink> self) {
  while (state_ != State::kShutdown && !queue_.empty()) {
    if (state_ == State::kClosed) {
      if (Clock::now() < retry_at_) {
        FailQueued(core::Status::Unavailable(name_ + ": " + last_error_));
        break;
      }
      co_await Open(self);
      continue;
    }
    if (state_ != State::kOpen || queue_.empty()) continue;
    Pending* p = queue_.front();
    queue_.pop_front();
    co_await Exchange(p);
  }
  running_ = false;
}

awaitable<void> YdtLink::Open(std::shared_ptr<YdtLink> self) {
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
    ++failures_;
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    retry_at_ = Clock::now() + modbus::Backoff(failures_, options_.reopen_min, options_.reopen_max,
                                               unit(rng_), 16);
    FailQueued(core::Status::Unavailable(name_ + ": " + last_error_));
    co_return;
  }
  state_ = State::kOpen;
  ++stats_.connects;
  replied_since_open_ = false;
  splitter_.Reset();
  awaiting_ = false;
  last_rx_ = Clock::now();
  asio::co_spawn(ex_, ReadLoop(self, gen), asio::detached);
}

// Takes whatever arrives: the current request's reply, or bytes nobody asked
// for (a late reply, noise), which are counted and dropped.
awaitable<void> YdtLink::ReadLoop(std::shared_ptr<YdtLink> self, uint64_t gen) {
  std::array<uint8_t, 512> buf;
  while (gen == generation_) {
    error_code ec;
    const size_t n = co_await stream_->ReadSome(asio::buffer(buf), ec);
    if (gen != generation_) co_return;
    if (ec) {
      self->Drop(ec == asio::error::eof ? "closed by the peer" : "read: " + ec.message());
      co_return;
    }
    const auto now = Clock::now();
    if (awaiting_) {
      splitter_.Feed(std::span<const uint8_t>(buf.data(), n));
      rx_signal_.cancel();
    } else {
      bus_stats_.discarded_bytes += n;
      if (now - last_rx_ > options_.char_gap) ++stats_.late_replies;  // a burst nobody asked for
    }
    last_rx_ = now;
  }
}

awaitable<void> YdtLink::Exchange(Pending* p) {
  current_ = p;
  p->taken = true;
  const core::Millis timeout = p->timeout;
  const Frame request = p->request;  // `p` may go (its waiter's backstop) while we listen
  tx_.clear();
  AppendFrame(&tx_, request);
  const auto start = Clock::now();
  // A reply may run past the timeout while its characters keep coming, up to
  // reply_limit; the waiter's backstop lies beyond that.
  p->wake.expires_at(start + 2 * timeout + options_.reply_limit + std::chrono::seconds(1));
  p->rearmed = true;
  stats_.max_in_flight_seen = 1;
  const uint64_t discarded_before = splitter_.discarded();
  splitter_.Reset();
  awaiting_ = true;
  const uint64_t gen = generation_;
  error_code ec;
  co_await stream_->Write(asio::buffer(tx_), ec);
  if (gen != generation_ || state_ != State::kOpen) co_return;  // closed: current_ was failed
  if (ec) {
    Drop("write: " + ec.message());
    co_return;
  }
  const auto on_wire = Clock::now();
  line_busy_until_ = on_wire;
  const auto deadline = on_wire + timeout;
  const auto hard_deadline = deadline + options_.reply_limit;
  core::Result<Frame> result = core::Status::Internal("no reply");
  bool answered = false, settle = true;
  int skipped = 0;
  uint8_t skipped_adr = 0;
  for (;;) {
    bool stop = false;
    for (auto raw = splitter_.Next(); !raw.empty(); raw = splitter_.Next()) {
      auto f = DecodeFrame(raw);
      if (!f.ok()) {
        ++bus_stats_.bad_frames;
        result = f.status();
        stop = true;
        break;
      }
      if (f->adr != request.adr) {  // another device's late reply: not ours
        ++skipped;
        skipped_adr = f->adr;
        ++stats_.late_replies;
        bus_stats_.discarded_bytes += raw.size();
        continue;
      }
      if (auto st = CheckReply(*f, request); !st.ok()) {
        if (st.code() == core::Status::Code::kFailedPrecondition)
          ++bus_stats_.refused;
        else
          ++bus_stats_.bad_frames;
        result = st;
        answered = st.code() == core::Status::Code::kFailedPrecondition;
      } else {
        result = std::move(*f);
        answered = true;
        settle = splitter_.mid_frame();  // more bytes after the frame: let them pass
      }
      stop = true;
      break;
    }
    if (stop) break;
    const auto now = Clock::now();
    // Past the deadline only a reply that is still arriving is waited for.
    const bool arriving =
        splitter_.mid_frame() && now - last_rx_ < options_.char_gap && now < hard_deadline;
    if (now >= deadline && !arriving) {
      if (splitter_.mid_frame()) {
        ++bus_stats_.bad_frames;
        result = core::Status::InvalidArgument(
            "length: reply cut off (no EOI) within " + Ms(timeout) +
            (now >= hard_deadline ? " + " + Ms(options_.reply_limit) : std::string()));
      } else {
        result = core::Status::DeadlineExceeded(
            "no answer within " + Ms(timeout) +
            (skipped ? " (skipped a late reply from ADR " + Hex2(skipped_adr) + ")" : ""));
      }
      break;
    }
    rx_signal_.expires_at(now >= deadline ? std::min(last_rx_ + options_.char_gap, hard_deadline)
                                          : deadline);
    error_code wait_ec;
    co_await rx_signal_.async_wait(asio::redirect_error(asio::use_awaitable, wait_ec));
    if (gen != generation_ || state_ != State::kOpen) co_return;
  }
  awaiting_ = false;
  bus_stats_.discarded_bytes += splitter_.discarded() - discarded_before;
  if (answered) {
    ++stats_.answers;
    replied_since_open_ = true;
    failures_ = 0;
  }
  if (current_) {
    if (result.status().code() == core::Status::Code::kDeadlineExceeded) ++stats_.timeouts;
    Finish(current_, std::move(result));
    current_ = nullptr;
  }
  if (!settle) co_return;
  // A late or broken reply may still be on its way: wait for the line to be
  // quiet for `settle` and drop what came, so it is not the next answer.
  line_busy_until_ = std::max(line_busy_until_, Clock::now());
  co_await WaitQuiet(options_.settle);
}

awaitable<void> YdtLink::WaitQuiet(std::chrono::nanoseconds quiet) {
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

void YdtLink::Finish(Pending* p, core::Result<Frame> reply) {
  p->reply = std::move(reply);
  p->done = true;
  p->wake.cancel();
}

void YdtLink::FailQueued(const core::Status& why) {
  std::deque<Pending*> all;
  all.swap(queue_);
  for (Pending* p : all) Finish(p, why);
}

void YdtLink::Close(const std::string& why) {
  ++generation_;
  state_ = State::kClosed;
  stream_->Close();
  awaiting_ = false;
  splitter_.Reset();
  last_error_ = why;
  rx_signal_.cancel();
  pace_.cancel();
  if (current_) {
    Finish(current_, core::Status::Unavailable(name_ + ": " + why));
    current_ = nullptr;
  }
}

void YdtLink::Drop(const std::string& why) {
  if (state_ != State::kOpen) return;
  ++stats_.drops;
  const bool was_useful = replied_since_open_;
  Close(why);
  if (was_useful) {
    retry_at_ = Clock::now();  // it worked until now: reopen at once
  } else {
    ++failures_;
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    retry_at_ = Clock::now() + modbus::Backoff(failures_, options_.reopen_min, options_.reopen_max,
                                               unit(rng_), 16);
  }
}

void YdtLink::Shutdown() {
  if (state_ == State::kShutdown) return;
  Close("poller stopped");
  state_ = State::kShutdown;
  FailQueued(core::Status::Unavailable(name_ + ": poller stopped"));
}

modbus::Poller::LinkFactory LinkFactory(asio::any_io_executor ex, const YdtMapRegistry& maps,
                                        core::Millis connect_timeout) {
  return
      [ex, &maps, connect_timeout](
          const modbus::DeviceSpec& spec,
          std::shared_ptr<modbus::Link> existing) -> core::Result<std::shared_ptr<modbus::Link>> {
        const YdtMap* map = maps.Find(spec.map);
        if (!map) return core::Status::InvalidArgument("unknown YD/T 1363 map '" + spec.map + "'");
        if (spec.unit < 0 || spec.unit > 255)
          return core::Status::InvalidArgument("ADR " + std::to_string(spec.unit) +
                                               " out of range (0-255)");
        std::shared_ptr<YdtLink> link = std::dynamic_pointer_cast<YdtLink>(existing);
        if (!link) {
          LinkOptions options;
          options.connect_timeout = connect_timeout;
          link = spec.transport == modbus::Transport::kRtuSerial
                     ? YdtLink::Serial(ex, spec.serial, options)
                     : YdtLink::OverTcp(ex, spec.host, spec.port, options);
        }
        if (auto st = link->Attach(static_cast<uint8_t>(spec.unit), map); !st.ok()) return st;
        return std::shared_ptr<modbus::Link>(link);
      };
}

}  // namespace sitepower::ydt1363
