#include "modbus/poller.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "modbus/connection.hpp"
#include "modbus/link.hpp"
#include "modbus/rtu_link.hpp"
#include "modbus/sunspec.hpp"

namespace sitepower::modbus {

namespace asio = boost::asio;
using asio::awaitable;

// Relocated maps, one per (map, SunSpec chain): devices of the same make and
// firmware share one copy (100,000 devices would otherwise hold 100,000).
struct RelocatedMaps {
  std::map<std::string, std::unique_ptr<RegisterMap>> by_chain;
};

struct Poller::Device {
  Device(asio::io_context& io, DeviceSpec s, const RegisterMap& m, std::shared_ptr<Link> c,
         std::shared_ptr<RelocatedMaps> maps)
      : spec(std::move(s)),
        base_map(m),
        map(&m),
        relocated(std::move(maps)),
        conn(std::move(c)),
        tick(io),
        rng(static_cast<unsigned>(std::hash<std::string>()(spec.site))) {}
  DeviceSpec spec;
  const RegisterMap& base_map;  // as written (common SunSpec layout)
  const RegisterMap* map;       // as this device has it (after SunSpec discovery)
  std::shared_ptr<RelocatedMaps> relocated;
  bool located = false;        // SunSpec chain discovered and cached
  std::shared_ptr<Link> conn;  // shared by every unit on this endpoint
  asio::steady_timer tick;     // between polls
  std::minstd_rand rng;        // backoff jitter, seeded per site: reproducible
  int failures = 0;
  bool fast = false;
  bool stopped = false;
};

namespace {

using DevicePtr = std::shared_ptr<Poller::Device>;

awaitable<core::Result<std::vector<uint16_t>>> Read(const DevicePtr& d, ReadBlock b,
                                                    core::Millis timeout) {
  return d->conn->Transact(static_cast<uint8_t>(d->spec.unit), b, timeout);
}

// Finds the device's SunSpec chain once and caches the relocated map; a
// device whose model moved (firmware update) is found again after a refusal.
awaitable<core::Status> Locate(DevicePtr d, core::Millis timeout) {
  if (!d->base_map.sunspec_model || d->located) co_return core::Status::Ok();
  SunSpecWalker walker;
  while (auto next = walker.Next()) {
    auto r = co_await Read(d, *next, timeout);
    if (r.ok())
      walker.Feed(*r);
    else if (r.status().code() == core::Status::Code::kFailedPrecondition)
      walker.FeedException(r.status().message());
    else
      co_return r.status();  // timeout, garbage, dropped link: not a "no"
  }
  if (!walker.error().ok()) co_return walker.error();
  auto& shared = d->relocated->by_chain[d->base_map.name + "|" + walker.chain().ToString()];
  if (!shared) {
    auto moved = RelocateToChain(d->base_map, walker.chain());
    if (!moved.ok()) co_return moved.status();
    shared = std::make_unique<RegisterMap>(std::move(*moved));
  }
  d->map = shared.get();
  d->located = true;
  co_return core::Status::Ok();
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
  // Spread first polls over a whole interval so that a region (or a gateway
  // with a hundred units) does not ask everything in the same instant.
  std::uniform_int_distribution<long> stagger(0, std::max<long>(0, options.interval.count()));
  boost::system::error_code ec;
  d->tick.expires_after(core::Millis(stagger(d->rng)));
  co_await d->tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  while (!d->stopped) {
    core::Status st = co_await Locate(d, options.timeout);
    std::vector<std::vector<uint16_t>> data;
    for (size_t i = 0; st.ok() && i < d->map->blocks.size() && !d->stopped; ++i) {
      auto r = co_await Read(d, d->map->blocks[i], options.timeout);
      if (r.ok())
        data.push_back(std::move(*r));
      else
        st = r.status();
    }
    if (d->stopped) co_return;
    Reading reading;
    if (st.ok()) {
      std::vector<std::string> problems;
      reading = DecodeReading(*d->map, data, clock->Now(), &problems);
      d->failures = 0;
    } else {
      reading.at = clock->Now();
      reading.poll_ok = false;
      reading.error = "site " + d->spec.site + " (" + d->spec.host + ":" +
                      std::to_string(d->spec.port) + " unit " + std::to_string(d->spec.unit) +
                      "): " + st.message();
      ++d->failures;
      // A refused read may mean the model moved: look for it again. (Links
      // are the connection's business: it drops and reopens them itself.)
      if (st.code() == core::Status::Code::kFailedPrecondition) d->located = false;
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

const char* TransportName(Transport t) {
  switch (t) {
    case Transport::kTcp:
      return "tcp";
    case Transport::kRtuOverTcp:
      return "rtu_over_tcp";
    case Transport::kRtuSerial:
      return "rtu";
  }
  return "?";
}

core::Status Poller::AddDevice(const DeviceSpec& spec) {
  const RegisterMap* map = maps_.Find(spec.map);
  if (!map)
    return core::Status::InvalidArgument("site " + spec.site + ": unknown register map '" +
                                         spec.map + "'");
  const bool serial = spec.transport == Transport::kRtuSerial;
  if (!serial && spec.host.empty())
    return core::Status::InvalidArgument("site " + spec.site + ": controller host is empty");
  if (serial && spec.serial.device.empty())
    return core::Status::InvalidArgument("site " + spec.site + ": serial device is empty");
  if (spec.unit < 0 || spec.unit > 255)
    return core::Status::InvalidArgument("site " + spec.site + ": unit id out of range");
  if (devices_.count(spec.site))
    return core::Status::AlreadyExists("site " + spec.site + ": polled twice");
  // One link per endpoint, shared by every unit id there; it allows the
  // smallest in-flight limit any map polled there asks for.
  std::string endpoint;
  switch (spec.transport) {
    case Transport::kTcp:
      endpoint = spec.host + ":" + std::to_string(spec.port);
      break;
    case Transport::kRtuOverTcp:
      endpoint = "rtu+tcp://" + spec.host + ":" + std::to_string(spec.port);
      break;
    case Transport::kRtuSerial:
      endpoint = "rtu:" + spec.serial.device;
      break;
  }
  auto& conn = links_[endpoint];
  if (!conn) {
    if (spec.transport != Transport::kTcp)
      conn = MakeRtuLink(io_.get_executor(), spec, options_.timeout);  // one bus, one queue
    else
      conn = std::make_shared<Connection>(io_.get_executor(), spec.host, spec.port,
                                          map->max_in_flight, options_.timeout);
  } else if (auto st = CheckJoinsBus(*conn, spec); !st.ok()) {
    return st;  // one wire cannot run at two speeds
  } else {
    conn->LimitInFlight(map->max_in_flight);
  }
  if (!relocated_) relocated_ = std::make_shared<RelocatedMaps>();
  auto d = std::make_shared<Device>(io_, spec, *map, conn, relocated_);
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
    d->tick.cancel();
  }
  for (auto& [endpoint, c] : links_) c->Shutdown();
}

}  // namespace sitepower::modbus
