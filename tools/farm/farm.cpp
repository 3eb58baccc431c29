#include "farm/farm.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <deque>

#include "modbus/codec.hpp"

namespace sitepower::farm {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using modbus::Function;

namespace {

constexpr uint16_t kBase = 40000;
constexpr uint16_t kSize = 210;          // 40000..40209
constexpr uint16_t kStandardSize = 136;  // 40000..40135: chain, model 1, model 802, end

// The register image every unit shows (values vary a little per unit).
std::array<uint16_t, kSize> Image(int unit) {
  std::array<uint16_t, kSize> r{};
  r[0] = 0x5375;  // "Su"
  r[1] = 0x6E53;  // "nS"
  r[2] = 1;       // common model
  r[3] = 66;
  r[70] = 802;  // battery model
  r[71] = 62;
  r[81] = static_cast<uint16_t>(90 + unit % 10);     // SoC %
  r[104] = static_cast<uint16_t>(5350 + unit % 20);  // V x 10^-2
  r[114] = 0;                                        // A
  r[126] = 0;                                        // SoC sf
  r[129] = static_cast<uint16_t>(-2);                // V sf
  r[131] = static_cast<uint16_t>(-1);                // A sf
  r[134] = 0xFFFF;                                   // end of chain
  r[135] = 0;
  r[200] = 250;   // 25.0 C
  r[201] = 4320;  // LVD 43.20 V
  return r;
}

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

}  // namespace

struct Farm::Impl : std::enable_shared_from_this<Farm::Impl> {
  Impl(asio::io_context& io, FarmOptions o) : io(io), options(std::move(o)) {}
  asio::io_context& io;
  FarmOptions options;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::vector<uint16_t> ports;
  FarmStats stats;
  bool stopped = false;

  UnitFault Fault(int port_index, int unit) const {
    if (options.faulty_fraction <= 0) return UnitFault::kNone;
    uint64_t h = Mix(options.seed * 1000003ULL + static_cast<uint64_t>(port_index) * 65537ULL +
                     static_cast<uint64_t>(unit));
    if (static_cast<double>(h % 1000000) / 1e6 >= options.faulty_fraction) return UnitFault::kNone;
    switch ((h >> 32) % 3) {
      case 0:
        return UnitFault::kSilent;
      case 1:
        return UnitFault::kException;
      default:
        return UnitFault::kMalformed;
    }
  }

  // The reply to one request, or empty for no reply.
  std::vector<uint8_t> Answer(int port_index, const modbus::ReadRequest& q) {
    const int unit = q.unit;
    if (unit < 1 || unit > options.units_per_port)
      return modbus::EncodeException(q.transaction_id, q.unit, q.function, 0x0B);  // no response
    switch (Fault(port_index, unit)) {
      case UnitFault::kSilent:
        return {};
      case UnitFault::kException:
        return modbus::EncodeException(q.transaction_id, q.unit, q.function, 0x04);
      case UnitFault::kMalformed: {
        std::vector<uint16_t> junk(q.count ? q.count : 1, 0xA5A5);
        auto r = modbus::EncodeReadResponse(q.transaction_id, q.unit,
                                            Function::kReadHoldingRegisters, junk);
        if (r.size() > 8) r[8] = static_cast<uint8_t>(r[8] + 2);  // byte count that lies
        return r;
      }
      case UnitFault::kNone:
        break;
    }
    if (!options.plant_extension) {
      // A standard SunSpec 802 device: holding registers only, the chain only.
      if (q.function != 3)
        return modbus::EncodeException(q.transaction_id, q.unit, q.function, 0x01);
      if (q.count == 0 || q.count > 125 || q.address < kBase ||
          q.address + q.count > kBase + kStandardSize)
        return modbus::EncodeException(q.transaction_id, q.unit, q.function, 0x02);
    }
    if (q.function == 2 || q.function == 1) {
      if (q.count == 0 || q.count > 2000)
        return modbus::EncodeException(q.transaction_id, q.unit, q.function, 0x03);
      std::vector<uint16_t> bits(q.count, 0);
      if (q.address == 0 && q.count >= 1) bits[0] = 1;  // mains present
      return modbus::EncodeReadResponse(q.transaction_id, q.unit, static_cast<Function>(q.function),
                                        bits);
    }
    if (q.function != 3 && q.function != 4)
      return modbus::EncodeException(q.transaction_id, q.unit, q.function, 0x01);
    if (q.count == 0 || q.count > 125 || q.address < kBase || q.address + q.count > kBase + kSize)
      return modbus::EncodeException(q.transaction_id, q.unit, q.function, 0x02);
    auto image = Image(unit);
    std::vector<uint16_t> words(image.begin() + (q.address - kBase),
                                image.begin() + (q.address - kBase + q.count));
    return modbus::EncodeReadResponse(q.transaction_id, q.unit, static_cast<Function>(q.function),
                                      words);
  }

  struct Conn {
    explicit Conn(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    std::deque<std::vector<uint8_t>> out;
    bool writing = false;
    bool closed = false;
  };

  void Send(const std::shared_ptr<Conn>& c, std::vector<uint8_t> frame) {
    if (c->closed) return;
    c->out.push_back(std::move(frame));
    if (c->writing) return;
    c->writing = true;
    asio::co_spawn(io, WriteLoop(c), asio::detached);
  }

  awaitable<void> WriteLoop(std::shared_ptr<Conn> c) {
    boost::system::error_code ec;
    while (!c->out.empty() && !c->closed) {
      std::vector<uint8_t> buf;
      for (auto& f : c->out) buf.insert(buf.end(), f.begin(), f.end());
      c->out.clear();
      co_await asio::async_write(c->socket, asio::buffer(buf),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) c->closed = true;
    }
    c->writing = false;
  }

  awaitable<void> Delayed(std::shared_ptr<Conn> c, std::vector<uint8_t> frame) {
    asio::steady_timer t(io);
    t.expires_after(std::chrono::milliseconds(options.latency_ms));
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    ++stats.answered;
    Send(c, std::move(frame));
  }

  awaitable<void> Serve(std::shared_ptr<Conn> c, int port_index) {
    auto self = shared_from_this();
    ++stats.connections;
    std::array<uint8_t, modbus::kMbapHeaderSize> head{};
    std::vector<uint8_t> pdu;
    boost::system::error_code ec;
    while (!stopped && !c->closed) {
      co_await asio::async_read(c->socket, asio::buffer(head),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      auto h = modbus::DecodeMbapHeader(head);
      if (!h.ok()) break;
      pdu.resize(h->length - 1u);
      co_await asio::async_read(c->socket, asio::buffer(pdu),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      ++stats.requests;
      auto q = modbus::DecodeReadRequest(*h, pdu);
      if (!q.ok()) continue;
      auto reply = Answer(port_index, *q);
      if (reply.empty()) continue;  // a silent unit
      if (options.latency_ms <= 0) {
        ++stats.answered;
        Send(c, std::move(reply));
      } else {
        asio::co_spawn(io, Delayed(c, std::move(reply)), asio::detached);
      }
    }
    c->closed = true;
    boost::system::error_code ignored;
    c->socket.close(ignored);
  }

  awaitable<void> Accept(size_t index) {
    auto self = shared_from_this();
    boost::system::error_code ec;
    while (!stopped) {
      tcp::socket s =
          co_await acceptors[index]->async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (stopped || ec == asio::error::operation_aborted) co_return;
        continue;
      }
      s.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(io, Serve(std::make_shared<Conn>(std::move(s)), static_cast<int>(index)),
                     asio::detached);
    }
  }
};

Farm::Farm(asio::io_context& io, FarmOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}
Farm::~Farm() { Stop(); }

core::Status Farm::Start() {
  auto& o = impl_->options;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(o.host, ec);
  if (ec) return core::Status::InvalidArgument("farm host " + o.host + ": " + ec.message());
  for (int i = 0; i < o.ports; ++i) {
    auto a = std::make_unique<tcp::acceptor>(impl_->io);
    uint16_t port = o.first_port ? static_cast<uint16_t>(o.first_port + i) : 0;
    tcp::endpoint ep(addr, port);
    a->open(ep.protocol(), ec);
    if (!ec) a->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) a->bind(ep, ec);
    if (!ec) a->listen(1024, ec);
    if (ec)
      return core::Status::Unavailable("farm port " + std::to_string(port) + ": " + ec.message());
    impl_->ports.push_back(a->local_endpoint().port());
    impl_->acceptors.push_back(std::move(a));
  }
  for (size_t i = 0; i < impl_->acceptors.size(); ++i)
    asio::co_spawn(impl_->io, impl_->Accept(i), asio::detached);
  return core::Status::Ok();
}

void Farm::Stop() {
  impl_->stopped = true;
  boost::system::error_code ec;
  for (auto& a : impl_->acceptors) a->close(ec);
}

const std::vector<uint16_t>& Farm::ports() const { return impl_->ports; }
UnitFault Farm::FaultOf(int port_index, int unit) const { return impl_->Fault(port_index, unit); }
const FarmStats& Farm::stats() const { return impl_->stats; }

}  // namespace sitepower::farm
