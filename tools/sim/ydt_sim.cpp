#include "sim/ydt_sim.hpp"

#include <fcntl.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "modbus/map_image.hpp"
#include "ydt1363/frame.hpp"

namespace sitepower::sim {

namespace asio = boost::asio;
using asio::awaitable;
using boost::system::error_code;

namespace {

struct Device {
  uint8_t adr = 0;
  const ydt1363::YdtMap* map = nullptr;
  ControllerState state;
  YdtFault fault = YdtFault::kNone;
  std::chrono::milliseconds late_by{0};
  uint64_t replies = 0;
  bool warned = false;
};

modbus::CanonicalValues Values(const ControllerState& s) {
  modbus::CanonicalValues v;
  v.battery_voltage_v = s.voltage_v;
  v.battery_current_a = s.current_a;
  v.battery_temp_c = s.temp_c;
  v.soc_pct = s.soc_pct;
  v.remaining_ah = s.capacity_ah * s.soc_pct / 100.0;
  v.lvd_v = s.lvd_v;
  v.alarms = 0;
  v.mains_ok = s.mains_ok;
  v.generator_running = s.generator_running;
  v.lvd_open = s.lvd_open;
  return v;
}

}  // namespace

struct YdtBus::Impl : std::enable_shared_from_this<YdtBus::Impl> {
  asio::io_context io;
  std::thread thread;
  std::atomic<bool> running{false};
  mutable std::mutex mu;  // guards devices' state, fault and counters
  std::vector<Device> devices;
  std::atomic<uint64_t> heard{0};
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor;
  int pty_master = -1, pty_slave = -1;

  // The reply `d` sends to `req` now, or nothing (silent); `delay` is set for
  // a late reply.
  std::vector<uint8_t> Reply(const ydt1363::Frame& req, std::chrono::milliseconds* delay) {
    std::lock_guard<std::mutex> lock(mu);
    Device* d = nullptr;
    for (auto& dev : devices)
      if (dev.adr == req.adr) d = &dev;
    if (!d || d->fault == YdtFault::kSilent) return {};  // nobody at this ADR answers
    ydt1363::Frame out{.ver = d->map->ver, .adr = d->adr, .cid1 = req.cid1, .cid2 = 0, .info = {}};
    const ydt1363::Command* cmd = nullptr;
    for (const auto& c : d->map->commands)
      if (c.cid1 == req.cid1 && c.cid2 == req.cid2) cmd = &c;
    if (d->fault == YdtFault::kRefuse) {
      out.cid2 = static_cast<uint8_t>(ydt1363::Rtn::kBadFormat);
    } else if (!cmd) {
      out.cid2 = static_cast<uint8_t>(ydt1363::Rtn::kBadCid2);
    } else {
      auto image = modbus::EncodeImage(d->map->registers, Values(d->state));
      if (!image.ok() && !d->warned) {
        std::fprintf(stderr, "sim: YD/T device ADR %u (map %s): %s\n", d->adr, d->map->name.c_str(),
                     image.status().message().c_str());
        d->warned = true;
      }
      std::vector<uint16_t> words(cmd->words, 0);
      if (image.ok())
        for (uint16_t i = 0; i < cmd->words; ++i)
          words[i] = image
                         ->Get(modbus::Function::kReadHoldingRegisters,
                               static_cast<uint16_t>(cmd->base + i))
                         .value_or(0);
      out.info = ydt1363::RegistersToInfo(*cmd, words);
    }
    std::vector<uint8_t> bytes = ydt1363::EncodeFrame(out);
    if (d->fault == YdtFault::kBadChecksum) {  // another hex digit in CHKSUM
      uint8_t& c = bytes[bytes.size() - 2];
      c = c == '0' ? '1' : '0';
    }
    if (d->fault == YdtFault::kTruncated) bytes.resize(bytes.size() - 3);
    *delay = d->fault == YdtFault::kLate ? d->late_by : std::chrono::milliseconds(0);
    ++d->replies;
    return bytes;
  }

  template <typename Stream>
  awaitable<void> Serve(std::shared_ptr<Stream> s, std::shared_ptr<Impl> /*keep_alive*/) {
    ydt1363::FrameSplitter splitter;
    std::array<uint8_t, 512> buf;
    asio::steady_timer timer(io);
    for (;;) {
      error_code ec;
      const size_t n = co_await s->async_read_some(asio::buffer(buf),
                                                   asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      splitter.Feed(std::span<const uint8_t>(buf.data(), n));
      for (auto raw = splitter.Next(); !raw.empty(); raw = splitter.Next()) {
        auto req = ydt1363::DecodeFrame(raw);
        if (!req.ok()) continue;  // a device ignores what it cannot read
        ++heard;
        std::chrono::milliseconds delay{0};
        std::vector<uint8_t> reply = Reply(*req, &delay);
        if (reply.empty()) continue;
        if (delay.count() > 0) {
          timer.expires_after(delay);
          co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        co_await asio::async_write(*s, asio::buffer(reply),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
      }
    }
  }

  awaitable<void> Accept(std::shared_ptr<Impl> self) {
    for (;;) {
      error_code ec;
      auto sock = std::make_shared<asio::ip::tcp::socket>(io);
      co_await acceptor->async_accept(*sock, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(io, Serve(sock, self), asio::detached);
    }
  }
};

YdtBus::YdtBus() : impl_(std::make_shared<Impl>()) {}

YdtBus::~YdtBus() {
  Stop();
  if (impl_->pty_master >= 0) ::close(impl_->pty_master);
  if (impl_->pty_slave >= 0) ::close(impl_->pty_slave);
}

int YdtBus::Add(uint8_t adr, const ydt1363::YdtMap& map, std::string* error) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (const auto& d : impl_->devices)
    if (d.adr == adr) {
      if (error) *error = "ADR " + std::to_string(adr) + " is taken on this bus";
      return -1;
    }
  Device d;
  d.adr = adr;
  d.map = &map;
  impl_->devices.push_back(d);
  return static_cast<int>(impl_->devices.size() - 1);
}

uint16_t YdtBus::ListenTcp(std::string* error) {
  error_code ec;
  auto acc = std::make_unique<asio::ip::tcp::acceptor>(impl_->io);
  asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(16, ec);
  if (ec) {
    if (error) *error = "listen: " + ec.message();
    return 0;
  }
  const uint16_t port = acc->local_endpoint().port();
  impl_->acceptor = std::move(acc);
  return port;
}

std::string YdtBus::OpenPty(std::string* error) {
  char name[256];
  if (::openpty(&impl_->pty_master, &impl_->pty_slave, name, nullptr, nullptr) != 0) {
    if (error) *error = std::string("openpty: ") + std::strerror(errno);
    return "";
  }
  termios t{};
  ::tcgetattr(impl_->pty_master, &t);
  ::cfmakeraw(&t);
  ::tcsetattr(impl_->pty_master, TCSANOW, &t);
  return name;  // the slave stays open here so the line survives the daemon's reopen
}

void YdtBus::Start() {
  if (impl_->running.exchange(true)) return;
  if (impl_->acceptor) asio::co_spawn(impl_->io, impl_->Accept(impl_), asio::detached);
  if (impl_->pty_master >= 0) {
    auto sd = std::make_shared<asio::posix::stream_descriptor>(impl_->io, ::dup(impl_->pty_master));
    asio::co_spawn(impl_->io, impl_->Serve(sd, impl_), asio::detached);
  }
  impl_->thread = std::thread([impl = impl_] {
    auto guard = asio::make_work_guard(impl->io);
    impl->io.run();
  });
}

void YdtBus::Stop() {
  if (!impl_->running.exchange(false)) return;
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void YdtBus::Set(int index, const ControllerState& state) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (index >= 0 && static_cast<size_t>(index) < impl_->devices.size())
    impl_->devices[index].state = state;
}

void YdtBus::SetFault(int index, YdtFault fault, std::chrono::milliseconds late_by) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (index >= 0 && static_cast<size_t>(index) < impl_->devices.size()) {
    impl_->devices[index].fault = fault;
    impl_->devices[index].late_by = late_by;
  }
}

uint64_t YdtBus::replies(int index) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (index < 0 || static_cast<size_t>(index) >= impl_->devices.size()) return 0;
  return impl_->devices[index].replies;
}

uint64_t YdtBus::requests_heard() const { return impl_->heard; }

}  // namespace sitepower::sim
