#include "modbus/poller.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <random>

namespace sitepower::modbus {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;

struct Poller::Device : std::enable_shared_from_this<Device> {
  Device(asio::io_context& io, DeviceSpec s, const RegisterMap& m)
      : spec(std::move(s)),
        map(m),
        socket(io),
        deadline(io),
        tick(io),
        rng(static_cast<unsigned>(std::hash<std::string>()(spec.site))) {}
  DeviceSpec spec;
  const RegisterMap& map;
  tcp::socket socket;
  asio::steady_timer deadline;  // per-request timeout: closes the socket
  asio::steady_timer tick;      // between polls
  std::minstd_rand rng;         // backoff jitter, seeded per site: reproducible
  uint16_t next_tid = 1;
  int failures = 0;
  bool fast = false;
  bool stopped = false;
  bool timed_out = false;
};

namespace {

// Arms the device's deadline; when it fires first, the socket is closed and
// the pending operation fails, so a silent device costs one timeout, no more.
void ArmDeadline(const std::shared_ptr<Poller::Device>& d, core::Millis timeout);

}  // namespace

// The device loop and its helpers need access to Device, so they are members
// of a small friend-free namespace scope via these free functions.
namespace detail {

using DevicePtr = std::shared_ptr<Poller::Device>;

awaitable<core::Status> Connect(DevicePtr d, core::Millis timeout) {
  boost::system::error_code ec;
  tcp::resolver resolver(d->socket.get_executor());
  auto endpoints = co_await resolver.async_resolve(d->spec.host, std::to_string(d->spec.port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return core::Status::Unavailable("resolve " + d->spec.host + ": " + ec.message());
  d->timed_out = false;
  ArmDeadline(d, timeout);
  co_await asio::async_connect(d->socket, endpoints, asio::redirect_error(asio::use_awaitable, ec));
  d->deadline.cancel();
  if (ec || d->timed_out) {
    d->socket.close(ec);
    co_return core::Status::Unavailable("connect " + d->spec.host + ":" +
                                        std::to_string(d->spec.port) + ": " +
                                        (d->timed_out ? "timed out" : ec.message()));
  }
  d->socket.set_option(tcp::no_delay(true), ec);
  co_return core::Status::Ok();
}

awaitable<core::Result<std::vector<uint16_t>>> Transact(DevicePtr d, ReadBlock b,
                                                        core::Millis timeout) {
  const uint16_t tid = d->next_tid++;
  auto req = EncodeReadRequest(tid, static_cast<uint8_t>(d->spec.unit), b.fc, b.address, b.count);
  std::string where = "fc " + std::to_string(static_cast<int>(b.fc)) + " register " +
                      std::to_string(b.address) + "+" + std::to_string(b.count);
  boost::system::error_code ec;
  d->timed_out = false;
  ArmDeadline(d, timeout);
  co_await asio::async_write(d->socket, asio::buffer(req),
                             asio::redirect_error(asio::use_awaitable, ec));
  std::array<uint8_t, kMbapHeaderSize> head{};
  if (!ec)
    co_await asio::async_read(d->socket, asio::buffer(head),
                              asio::redirect_error(asio::use_awaitable, ec));
  core::Result<MbapHeader> h = core::Status::Internal("no header");
  std::vector<uint8_t> pdu;
  if (!ec) {
    h = DecodeMbapHeader(head);
    if (h.ok()) {
      pdu.resize(h->length - 1);
      co_await asio::async_read(d->socket, asio::buffer(pdu),
                                asio::redirect_error(asio::use_awaitable, ec));
    }
  }
  d->deadline.cancel();
  if (d->timed_out)
    co_return core::Status::DeadlineExceeded(where + ": no answer within " +
                                             std::to_string(timeout.count()) + " ms");
  if (ec) co_return core::Status::Unavailable(where + ": " + ec.message());
  if (!h.ok()) co_return h.status().WithContext(where);
  if (h->transaction_id != tid || h->unit != d->spec.unit)
    co_return core::Status::InvalidArgument(
        where + ": reply for transaction " + std::to_string(h->transaction_id) + " unit " +
        std::to_string(h->unit) + ", expected " + std::to_string(tid) + " unit " +
        std::to_string(d->spec.unit));
  auto values = DecodeReadResponse(pdu, b.fc, b.count);
  if (!values.ok()) co_return values.status().WithContext(where);
  co_return values;
}

awaitable<core::Status> CheckSunSpecMarker(DevicePtr d, core::Millis timeout) {
  if (!d->map.sunspec_marker) co_return core::Status::Ok();
  auto r = co_await Transact(
      d, ReadBlock{Function::kReadHoldingRegisters, d->map.sunspec_marker, 2}, timeout);
  if (!r.ok()) co_return r.status();
  if ((*r)[0] != 0x5375 || (*r)[1] != 0x6E53)
    co_return core::Status::FailedPrecondition("no SunSpec \"SunS\" marker at register " +
                                               std::to_string(d->map.sunspec_marker));
  co_return core::Status::Ok();
}

}  // namespace detail

namespace {

void ArmDeadline(const std::shared_ptr<Poller::Device>& d, core::Millis timeout) {
  d->deadline.expires_after(timeout);
  d->deadline.async_wait(
      [weak = std::weak_ptr<Poller::Device>(d)](const boost::system::error_code& ec) {
        if (ec) return;  // cancelled: the operation finished in time
        if (auto dev = weak.lock()) {
          dev->timed_out = true;
          boost::system::error_code ignored;
          dev->socket.close(ignored);
        }
      });
}

// Exponential backoff with +-20 % jitter after consecutive failures, capped at
// 60 s, so a gateway that comes back is not hit by every device at once.
core::Millis NextDelay(Poller::Device& d, const PollerOptions& o) {
  core::Millis base = d.fast ? o.on_battery_interval : o.interval;
  if (d.failures == 0) return base;
  double factor = std::pow(2.0, std::min(d.failures - 1, 6));
  double ms = std::min(60000.0, std::max<double>(static_cast<double>(base.count()), 0.0) * factor);
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return core::Millis(static_cast<long>(ms * jitter(d.rng)));
}

awaitable<void> PollLoop(std::shared_ptr<Poller::Device> d, const core::Clock* clock,
                         PollerOptions options, Poller::Sink sink) {
  // Spread first polls so a whole region does not connect in the same instant.
  std::uniform_int_distribution<long> stagger(0, std::min<long>(options.interval.count(), 1000));
  boost::system::error_code ec;
  d->tick.expires_after(core::Millis(stagger(d->rng)));
  co_await d->tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  while (!d->stopped) {
    core::Status st;
    if (!d->socket.is_open()) {
      st = co_await detail::Connect(d, options.timeout);
      if (st.ok()) st = co_await detail::CheckSunSpecMarker(d, options.timeout);
    }
    std::vector<std::vector<uint16_t>> data;
    for (size_t i = 0; st.ok() && i < d->map.blocks.size() && !d->stopped; ++i) {
      auto r = co_await detail::Transact(d, d->map.blocks[i], options.timeout);
      if (r.ok())
        data.push_back(std::move(*r));
      else
        st = r.status();
    }
    if (d->stopped) co_return;
    Reading reading;
    if (st.ok()) {
      std::vector<std::string> problems;
      reading = DecodeReading(d->map, data, clock->Now(), &problems);
      d->failures = 0;
    } else {
      reading.at = clock->Now();
      reading.poll_ok = false;
      reading.error = "site " + d->spec.site + " (" + d->spec.host + ":" +
                      std::to_string(d->spec.port) + " unit " + std::to_string(d->spec.unit) +
                      "): " + st.message();
      ++d->failures;
      // An exception reply leaves the stream in sync; anything else may not.
      if (st.code() != core::Status::Code::kFailedPrecondition) d->socket.close(ec);
    }
    sink(d->spec.site, reading);
    d->tick.expires_after(NextDelay(*d, options));
    co_await d->tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace

Poller::Poller(asio::io_context& io, const core::Clock& clock, const MapRegistry& maps,
               PollerOptions options, Sink sink)
    : io_(io), clock_(clock), maps_(maps), options_(options), sink_(std::move(sink)) {}

Poller::~Poller() { Stop(); }

core::Status Poller::AddDevice(const DeviceSpec& spec) {
  const RegisterMap* map = maps_.Find(spec.map);
  if (!map)
    return core::Status::InvalidArgument("site " + spec.site + ": unknown register map '" +
                                         spec.map + "'");
  if (spec.host.empty())
    return core::Status::InvalidArgument("site " + spec.site + ": controller host is empty");
  if (spec.unit < 0 || spec.unit > 255)
    return core::Status::InvalidArgument("site " + spec.site + ": unit id out of range");
  if (devices_.count(spec.site))
    return core::Status::AlreadyExists("site " + spec.site + ": polled twice");
  auto d = std::make_shared<Device>(io_, spec, *map);
  devices_[spec.site] = d;
  if (started_) asio::co_spawn(io_, PollLoop(d, &clock_, options_, sink_), asio::detached);
  return core::Status::Ok();
}

void Poller::SetFastPoll(const core::SiteId& site, bool fast) {
  auto it = devices_.find(site);
  if (it == devices_.end() || it->second->fast == fast) return;
  it->second->fast = fast;
  if (fast) it->second->tick.cancel();  // poll a site that just lost mains right away
}

void Poller::Start() {
  if (started_) return;
  started_ = true;
  for (auto& [site, d] : devices_)
    asio::co_spawn(io_, PollLoop(d, &clock_, options_, sink_), asio::detached);
}

void Poller::Stop() {
  for (auto& [site, d] : devices_) {
    d->stopped = true;
    boost::system::error_code ec;
    d->tick.cancel();
    d->deadline.cancel();
    d->socket.close(ec);
  }
}

}  // namespace sitepower::modbus
