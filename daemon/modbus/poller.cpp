#include "modbus/poller.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <functional>
#include <random>
#include <thread>

#include "modbus/connection.hpp"
#include "modbus/link.hpp"
#include "modbus/rtu_link.hpp"
#include "modbus/schedule.hpp"
#include "modbus/sunspec.hpp"

namespace sitepower::modbus {

namespace asio = boost::asio;
using asio::awaitable;

// Relocated maps, one per (map, SunSpec chain), and identities: devices of
// the same make and firmware share one copy (100,000 devices would otherwise
// hold 100,000).
struct RelocatedMaps {
  std::map<std::string, std::unique_ptr<RegisterMap>> by_chain;
  std::map<std::string, std::shared_ptr<const std::string>> identities;
};

using SteadyClock = std::chrono::steady_clock;

struct Poller::Device : std::enable_shared_from_this<Poller::Device> {
  Device(DeviceSpec s, const RegisterMap& m, std::shared_ptr<Link> c,
         std::shared_ptr<RelocatedMaps> maps)
      : spec(std::move(s)),
        base_map(m),
        map(&m),
        relocated(std::move(maps)),
        conn(std::move(c)),
        rng(static_cast<unsigned>(std::hash<std::string>()(spec.site))) {}
  DeviceSpec spec;
  const RegisterMap& base_map;  // as written (common SunSpec layout)
  const RegisterMap* map;       // as this device has it (after SunSpec discovery)
  std::shared_ptr<RelocatedMaps> relocated;
  bool located = false;                         // SunSpec chain discovered and cached
  std::shared_ptr<const std::string> identity;  // SunSpec model 1, once read
  std::shared_ptr<Link> conn;                   // shared by every unit on this endpoint
  std::minstd_rand rng;                         // backoff jitter, seeded per site: reproducible
  ReadBatch batch;                              // one poll's requests and data; reused
  double phase = 0;                             // where in each interval this device polls, 0..1
  uint64_t seq = 0;  // bumped on every (re)schedule: stale entries are skipped
  int failures = 0;
  // Blocks of `map` this device refused with exception 01/02 (indices, in
  // order; empty: none). Their points are absent; they are not asked again
  // before reprobe_at. `asked` is map->blocks without them, `by_block` the
  // poll's data put back in map->blocks order for DecodeReading.
  std::vector<size_t> refused;
  std::vector<std::string> refused_why;  // the exception, per refused block
  std::vector<ReadBlock> asked;
  std::vector<std::vector<uint16_t>> by_block;
  bool decode_by_block = false;  // this poll's data is in by_block, not batch.data
  SteadyClock::time_point reprobe_at{};
  bool probing = false;  // this poll asks the refused blocks again
  std::shared_ptr<const std::string> absent_points;
  bool fast = false;
  bool busy = false;  // a poll (or SunSpec discovery) is under way
  bool stopped = false;
};

// A min-heap of (when, device) and one timer at its top, instead of a timer
// per device: 100,000 devices cost one timer, and devices due at the same
// instant (one endpoint's group) are started in the same turn, so their
// requests leave in one write.
struct Poller::Scheduler : std::enable_shared_from_this<Poller::Scheduler> {
  using Timer = asio::basic_waitable_timer<SteadyClock, asio::wait_traits<SteadyClock>,
                                           asio::io_context::executor_type>;
  struct Due {
    SteadyClock::time_point at;
    uint64_t seq;
    Device* device;
    bool operator>(const Due& o) const { return at > o.at; }
  };
  Scheduler(asio::io_context& io, std::function<void(Device*)> start_poll)
      : timer(io.get_executor()), start(std::move(start_poll)) {}
  // Polls `d` at `at` (replacing whatever it had planned).
  void At(Device* d, SteadyClock::time_point at) {
    if (stopped) return;
    heap.push_back({at, ++d->seq, d});
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
    Arm(at);
  }
  void Arm(SteadyClock::time_point at) {
    if (at >= armed) return;
    armed = at;
    timer.expires_at(at);  // an earlier wait ends with operation_aborted
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec != asio::error::operation_aborted) self->Fire();
    });
  }
  void Fire() {
    armed = SteadyClock::time_point::max();
    const auto now = SteadyClock::now();
    while (!stopped && !heap.empty() && heap.front().at <= now) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>());
      const Due due = heap.back();
      heap.pop_back();
      if (due.seq == due.device->seq && !due.device->stopped) start(due.device);
    }
    if (!stopped && !heap.empty()) Arm(heap.front().at);
  }
  void Stop() {
    stopped = true;
    heap.clear();
    timer.cancel();
  }
  Timer timer;
  std::function<void(Device*)> start;
  SteadyClock::time_point armed = SteadyClock::time_point::max();
  std::vector<Due> heap;
  SteadyClock::time_point epoch{};  // the poll grid's origin
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
  SunSpecWalker walker;
  while (auto next = walker.Next()) {
    auto r = co_await Read(d, *next, timeout);
    if (d->stopped) co_return core::Status::Unavailable("poller stopped");
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
  // Who the device is (common model 1), for the log and the dashboard; a
  // device that will not tell is still polled.
  if (const SunSpecModel* common = walker.chain().Find(kCommonModelId);
      common && common->length >= kCommonModelMinLength) {
    auto body =
        co_await Read(d,
                      ReadBlock{Function::kReadHoldingRegisters,
                                static_cast<uint16_t>(common->address + 2), kCommonModelMinLength},
                      timeout);
    if (body.ok())
      if (auto id = DecodeCommonModel(*body); id.ok()) {
        auto& known = d->relocated->identities[id->ToString()];
        if (!known) known = std::make_shared<const std::string>(id->ToString());
        d->identity = known;
      }
  }
  co_return core::Status::Ok();
}

// Exponential backoff with +-20 % jitter after consecutive failures, capped at
// 60 s, so a gateway that comes back is not hit by every device at once.
core::Millis BackoffDelay(Poller::Device& d, const PollerOptions& o) {
  if (d.failures == 0) return core::Millis(0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  return Backoff(d.failures, d.fast ? o.on_battery_interval : o.interval, core::Millis(60000),
                 unit(d.rng));
}

std::string BlockName(const ReadBlock& b) {
  return "fc " + std::to_string(static_cast<int>(b.fc)) + " register " + std::to_string(b.address) +
         "+" + std::to_string(b.count);
}

// "battery_temp_c, lvd_v (fc 3 register 40200+2: exception 0x02 (illegal data
// address))": the points the refused blocks hold (their words or scale
// factor), and why.
std::shared_ptr<const std::string> DescribeAbsent(const RegisterMap& map,
                                                  const std::vector<size_t>& refused,
                                                  const std::vector<std::string>& why) {
  if (refused.empty()) return nullptr;
  auto in = [&map](size_t b, Function fc, uint16_t a) {
    const ReadBlock& blk = map.blocks[b];
    return blk.fc == fc && a >= blk.address && a < blk.address + blk.count;
  };
  std::string points, blocks;
  for (const PointSpec& p : map.points) {
    bool absent = false;
    for (size_t b : refused)
      absent = absent || in(b, p.fc, p.address) || (p.scale_sf && in(b, p.fc, *p.scale_sf));
    if (absent) points += (points.empty() ? "" : ", ") + p.name;
  }
  for (size_t i = 0; i < refused.size(); ++i)
    blocks +=
        (i ? "; " : "") + BlockName(map.blocks[refused[i]]) + (i < why.size() ? ": " + why[i] : "");
  return std::make_shared<const std::string>((points.empty() ? "(no point)" : points) + " (" +
                                             blocks + ")");
}

}  // namespace

Poller::Poller(asio::io_context& io, const core::Clock& clock, const MapRegistry& maps,
               PollerOptions options, Sink sink)
    : io_(io),
      clock_(clock),
      maps_(maps),
      options_(options),
      sink_(std::move(sink)),
      scheduler_(std::make_shared<Scheduler>(io, [this](Device* d) { StartPoll(d); })) {}

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
  if (spec.protocol != "modbus") {
    auto factory = protocols_.find(spec.protocol);
    if (factory == protocols_.end())
      return core::Status::InvalidArgument("site " + spec.site + ": protocol '" + spec.protocol +
                                           "' is not wired into the poller");
    endpoint = spec.protocol + "|" + endpoint;  // one wire does not speak two protocols
  }
  if (spec.max_in_flight < 0 || spec.max_in_flight > static_cast<int>(Connection::kMaxInFlight))
    return core::Status::InvalidArgument("site " + spec.site + ": in_flight " +
                                         std::to_string(spec.max_in_flight) + " out of 0..255");
  const int in_flight = spec.max_in_flight > 0 ? spec.max_in_flight : map->max_in_flight;
  auto& conn = links_[endpoint];
  if (spec.protocol != "modbus") {
    auto link = protocols_[spec.protocol](spec, conn);
    if (!link.ok()) {
      if (!conn) links_.erase(endpoint);
      return link.status().WithContext("site " + spec.site);
    }
    conn = std::move(*link);
  } else if (!conn) {
    if (spec.transport != Transport::kTcp)
      conn = MakeRtuLink(io_.get_executor(), spec, options_.timeout);  // one bus, one queue
    else
      conn = std::make_shared<Connection>(io_.get_executor(), spec.host, spec.port, in_flight,
                                          options_.timeout);
  } else if (auto st = CheckJoinsBus(*conn, spec); !st.ok()) {
    return st;  // one wire cannot run at two speeds
  } else {
    conn->LimitInFlight(static_cast<size_t>(in_flight));
  }
  if (!relocated_) relocated_ = std::make_shared<RelocatedMaps>();
  auto d = std::make_shared<Device>(spec, *map, conn, relocated_);
  d->batch.unit = static_cast<uint8_t>(spec.unit);
  d->batch.timeout = options_.timeout;
  d->batch.on_done = [this, raw = d.get()](ReadBatch&) { OnPolled(raw); };
  devices_[spec.site] = d;
  by_link_[conn.get()].push_back(d.get());
  if (started_) {
    // Joins the running grid at a phase of its own.
    d->phase = static_cast<double>(std::hash<std::string>()(spec.site) % 10007) / 10007.0;
    scheduler_->At(d.get(),
                   NextSlot(scheduler_->epoch, options_.interval, d->phase, SteadyClock::now()));
  }
  return core::Status::Ok();
}

void Poller::AddProtocol(const std::string& protocol, LinkFactory factory) {
  protocols_[protocol] = std::move(factory);
}

void Poller::StartPoll(Device* d) {
  d->busy = true;
  if (d->base_map.sunspec_model && !d->located) {
    // Discovery is rare (once per device, again after a refusal): a coroutine.
    asio::co_spawn(
        io_,
        [](Poller* p, DevicePtr d, core::Millis timeout) -> awaitable<void> {
          core::Status st = co_await Locate(d, timeout);
          if (d->stopped) co_return;
          if (st.ok()) {
            p->SubmitPoll(d.get());
          } else {
            d->batch.status = st;
            p->OnPolled(d.get());
          }
        }(this, d->shared_from_this(), options_.timeout),
        asio::detached);
    return;
  }
  SubmitPoll(d);
}

void Poller::SubmitPoll(Device* d) {
  // Blocks the device refused are left out, except at the re-probe.
  d->probing = !d->refused.empty() && SteadyClock::now() >= d->reprobe_at;
  if (d->refused.empty() || d->probing)
    d->batch.blocks = d->map->blocks;
  else
    d->batch.blocks = d->asked;
  d->batch.owner = d->shared_from_this();
  if (d->conn->Submit(&d->batch)) return;
  d->batch.owner.reset();
  // A link without the batch path (an RTU bus): one block after the other,
  // through its coroutine interface, each block's outcome kept like Submit.
  asio::co_spawn(
      io_,
      [](Poller* p, DevicePtr d) -> awaitable<void> {
        ReadBatch& b = d->batch;
        const size_t n = b.blocks.size();
        b.data.resize(n);
        b.requests.resize(n);
        b.status = core::Status::Ok();
        for (size_t i = 0; i < n; ++i) {
          auto r = co_await d->conn->Transact(b.unit, b.blocks[i], b.timeout);
          if (d->stopped) co_return;
          b.requests[i].status = r.ok() ? core::Status::Ok() : r.status();
          if (r.ok()) {
            b.data[i] = std::move(*r);
            continue;
          }
          b.data[i].clear();
          if (b.status.ok()) b.status = r.status();
          if (IsRefusal(ExceptionCodeOf(r.status()))) continue;
          // A bus that timed out or garbled once is not asked for the rest.
          for (size_t k = i + 1; k < n; ++k) {
            b.requests[k].status = core::Status::Unavailable("not asked after the error");
            b.data[k].clear();
          }
          break;
        }
        p->OnPolled(d.get());
      }(this, d->shared_from_this()),
      asio::detached);
}

// Sorts one poll's blocks into data, refusals (exception 01/02: the device
// lacks those points) and failures; returns the poll's error (Ok: deliver),
// and updates which blocks the device refuses.
core::Status Poller::SortBlocks(Device* d) {
  ReadBatch& b = d->batch;
  const RegisterMap& map = *d->map;
  const std::string where = "unit " + std::to_string(b.unit) + " ";
  d->decode_by_block = false;
  if (b.requests.size() < b.blocks.size())
    return core::Status::Internal(where + "poll came back without its requests");
  bool explained = b.status.ok();
  for (size_t i = 0; i < b.blocks.size(); ++i) explained = explained || !b.requests[i].status.ok();
  if (!explained) return b.status;  // failed as a whole (the poller stopped)
  // Some blocks left out: the data goes back into the map's order
  // (by_block; the refused ones empty) for DecodeReading.
  d->decode_by_block = b.blocks.data() != map.blocks.data();
  if (d->decode_by_block) {
    d->by_block.resize(map.blocks.size());
    for (auto& v : d->by_block) v.clear();
  }
  std::vector<std::pair<size_t, std::string>> refused_now;  // map block, why
  bool any_data = false;
  size_t j = 0;  // the map block of blocks[i]
  for (size_t i = 0; i < b.blocks.size(); ++i, ++j) {
    if (d->decode_by_block)
      while (std::binary_search(d->refused.begin(), d->refused.end(), j)) ++j;
    const core::Status& st = b.requests[i].status;
    if (st.ok()) {
      any_data = true;
      if (d->decode_by_block && j < d->by_block.size()) d->by_block[j].swap(b.data[i]);
    } else if (auto code = ExceptionCodeOf(st); IsRefusal(code)) {
      refused_now.emplace_back(j, ExceptionName(*code));
      b.data[i].clear();
    } else {
      return st.WithContext(where + BlockName(b.blocks[i]));  // timeout, garbage, exception 04...
    }
  }
  if (!any_data) {
    // Nothing at all: not a device without some points, a device that is
    // not what the map says (or a SunSpec model that moved).
    d->refused.clear();
    d->refused_why.clear();
    d->absent_points.reset();
    return core::Status::FailedPrecondition(
        where + "refused every block of map " + map.name +
        (refused_now.empty() ? "" : ": " + refused_now.front().second));
  }
  if (!d->probing && refused_now.empty()) return core::Status::Ok();
  if (!d->probing)  // newly refused blocks join those not asked
    for (size_t k = 0; k < d->refused.size(); ++k)
      refused_now.emplace_back(d->refused[k], d->refused_why[k]);
  std::sort(refused_now.begin(), refused_now.end());
  std::vector<size_t> refused;
  std::vector<std::string> why;
  for (auto& [block, text] : refused_now) {
    refused.push_back(block);
    why.push_back(std::move(text));
  }
  if (refused != d->refused) {
    d->refused = std::move(refused);
    d->refused_why = std::move(why);
    d->asked.clear();
    for (size_t k = 0; k < map.blocks.size(); ++k)
      if (!std::binary_search(d->refused.begin(), d->refused.end(), k))
        d->asked.push_back(map.blocks[k]);
    d->absent_points = DescribeAbsent(map, d->refused, d->refused_why);
  }
  d->reprobe_at = SteadyClock::now() + options_.absent_reprobe;
  return core::Status::Ok();
}

// Runs when a poll is finished (on the link's turn of the event loop). Every
// path that touches the poller checks `stopped` first: after Stop the poller
// may be gone.
void Poller::OnPolled(Device* d) {
  d->busy = false;
  if (d->stopped) return;
  Reading reading;
  const core::Status st =
      d->batch.blocks.empty()
          ? d->batch.status
          : (d->located || !d->map->sunspec_model ? SortBlocks(d) : d->batch.status);
  if (st.ok()) {
    std::vector<std::string> problems;
    reading = DecodeReading(*d->map, d->decode_by_block ? d->by_block : d->batch.data, clock_.Now(),
                            &problems);
    reading.problems = std::move(problems);
    reading.absent_points = d->absent_points;
    d->failures = 0;
  } else {
    reading.at = clock_.Now();
    reading.poll_ok = false;
    reading.error = "site " + d->spec.site + " (" + d->conn->name() + " unit " +
                    std::to_string(d->spec.unit) + "): " + st.message();
    ++d->failures;
    // A refused read may mean the model moved: look for it again. (Links
    // are the connection's business: it drops and reopens them itself.)
    if (st.code() == core::Status::Code::kFailedPrecondition) {
      d->located = false;
      d->refused.clear();  // the blocks are those of the map found next
      d->refused_why.clear();
      d->absent_points.reset();
    }
  }
  reading.identity = d->identity;
  sink_(d->spec.site, reading);
  if (d->stopped) return;
  const core::Millis interval = d->fast ? options_.on_battery_interval : options_.interval;
  // The next slot after this poll (a slow poll skips the slots it overran).
  scheduler_->At(d, NextSlot(scheduler_->epoch, interval, d->phase,
                             SteadyClock::now() + BackoffDelay(*d, options_)));
}

void Poller::SetFastPoll(const core::SiteId& site, bool fast) {
  auto it = devices_.find(site);
  if (it == devices_.end() || it->second->fast == fast) return;
  Device* d = it->second.get();
  d->fast = fast;
  // A site that just lost mains is polled right away (unless a poll is under
  // way: the next one then follows the fast grid).
  if (fast && started_ && !d->busy) scheduler_->At(d, SteadyClock::now());
}

void Poller::AssignPhases() {
  // schedule.hpp: groups that fit each endpoint's pipeline, spread evenly.
  size_t e = 0;
  for (auto& [endpoint, link] : links_) {  // by name: the same phases every run
    auto it = by_link_.find(link.get());
    if (it == by_link_.end()) continue;
    const auto& devices = it->second;
    const size_t group =
        PollGroupSize(link->in_flight_limit(), devices.front()->base_map.blocks.size());
    for (size_t i = 0; i < devices.size(); ++i)
      devices[i]->phase = PollPhase(i, devices.size(), group, e, links_.size());
    ++e;
  }
}

void Poller::Start() {
  if (started_) return;
  started_ = true;
  const auto now = SteadyClock::now();
  scheduler_->epoch = now;
  AssignPhases();
  for (auto& [site, d] : devices_)
    scheduler_->At(d.get(), NextSlot(now, options_.interval, d->phase, now));
}

PollerStats Poller::stats() const {
  PollerStats s;
  s.devices = devices_.size();
  s.links = links_.size();
  for (const auto& [site, d] : devices_) s.polls_under_way += d->busy ? 1 : 0;
  for (const auto& [endpoint, l] : links_) {
    s.outstanding += l->outstanding();
    const LinkStats& ls = l->stats();
    s.requests += ls.requests;
    s.answers += ls.answers;
    s.timeouts += ls.timeouts;
    s.connects += ls.connects;
    s.connect_failures += ls.connect_failures;
    s.drops += ls.drops;
    s.late_replies += ls.late_replies;
  }
  return s;
}

void Poller::Stop() {
  for (auto& [site, d] : devices_) d->stopped = true;
  scheduler_->Stop();
  for (auto& [endpoint, c] : links_) c->Shutdown();
}

void RunCoalesced(asio::io_context& io, std::chrono::microseconds coalesce) {
  if (coalesce <= std::chrono::microseconds(0)) {
    io.run();
    return;
  }
  while (!io.stopped()) {
    if (io.run_one() == 0) return;  // blocks until something is ready; out of work: done
    const auto woke = SteadyClock::now();
    io.poll();  // everything else ready now, in the same wake-up
    // What arrives meanwhile waits in the socket buffers and the timer
    // queue for the next wake-up; nothing is lost, only handled later.
    std::this_thread::sleep_until(woke + coalesce);
  }
}

}  // namespace sitepower::modbus
