// Polls every site's controller (Modbus TCP, RTU on a serial line, RTU
// through a TCP gateway) on one io_context: no thread per device, every
// request has a deadline, and a device that times out or lies never delays
// the others. Devices on one endpoint (a gateway, unit ids behind one port,
// one RS-485 bus) share one link (link.hpp). Polls follow a fixed grid
// (schedule.hpp) kept by one timer for all devices; a poll is one ReadBatch.
// Failed devices back off exponentially with jitter; links reopen by
// themselves. SunSpec maps find the device's model chain first (sunspec.hpp)
// and cache it, with the device's identity (model 1).
//
// A device that refuses some of its map's blocks with exception 01 (illegal
// function) or 02 (illegal data address) does not have those points: they
// are absent in its readings (Reading::absent_points names them), the other
// blocks are delivered, and the refused ones are asked again only every
// `absent_reprobe`. A device that refuses every block, or fails a block any
// other way, fails the poll (and a SunSpec device is looked for again).
//
// Threading: construct, AddDevice, Start, Stop and SetFastPoll on the
// io_context's thread (or before it runs). The sink is called on that thread.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <vector>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/time.hpp"
#include "modbus/register_map.hpp"
#include "modbus/site_state.hpp"

namespace sitepower::modbus {

class Link;            // link.hpp: one per endpoint, shared by its unit ids
struct RelocatedMaps;  // poller.cpp: SunSpec-relocated maps shared between devices

// How a controller is reached.
enum class Transport {
  kTcp,         // Modbus TCP (MBAP), host:port
  kRtuOverTcp,  // RTU frames (CRC, no MBAP) through a TCP gateway at host:port
  kRtuSerial,   // RTU on a serial line (RS-485/232) at serial.device
};
const char* TransportName(Transport t);  // "tcp", "rtu_over_tcp", "rtu"

struct SerialLine {
  std::string device;  // /dev/ttyUSB0, /dev/ttyS1, a pty...
  int baud = 9600;
  char parity = 'N';  // N, E or O
  int data_bits = 8;
  int stop_bits = 1;
};

struct DeviceSpec {
  core::SiteId site;
  std::string host;  // tcp and rtu_over_tcp
  uint16_t port = 502;
  int unit = 1;
  std::string map = "sunspec-802";
  Transport transport = Transport::kTcp;
  SerialLine serial;  // rtu: every unit on one device path is one bus
  // "modbus", or a protocol whose links come from Poller::AddProtocol
  // ("ydt1363": ydt1363/ydt_link.hpp; `unit` is then the device's ADR).
  std::string protocol = "modbus";
  // tcp: requests on the wire at once on this endpoint's connection (0: the
  // map's max_in_flight). Units sharing an endpoint get the smallest asked.
  int max_in_flight = 0;
  // rtu and rtu_over_tcp (rtu_link.hpp RtuOptions), taken from the first
  // device of a bus: quiet time after a timeout or garbage, and the backoff
  // (doubling, +-20 % jitter) after an open or connect that failed.
  core::Millis rtu_settle{50};
  core::Millis rtu_backoff_min{250};
  core::Millis rtu_backoff_max{30000};

  static DeviceSpec Tcp(core::SiteId site, std::string host, uint16_t port, int unit,
                        std::string map) {
    DeviceSpec d;
    d.site = std::move(site);
    d.host = std::move(host);
    d.port = port;
    d.unit = unit;
    d.map = std::move(map);
    return d;
  }
};

struct PollerOptions {
  core::Millis interval{10000};
  core::Millis on_battery_interval{5000};
  core::Millis timeout{1500};
  int stale_after_missed = 3;
  int mains_fail_confirm = 2;
  // A block a device refuses with exception 01/02 (it lacks those points) is
  // not read again until this much later; the rest of the map is polled.
  core::Millis absent_reprobe{3600000};
};

struct PollerStats {
  size_t devices = 0, links = 0;
  size_t polls_under_way = 0;  // sites whose poll is in flight right now
  size_t outstanding = 0;      // requests queued or on the wire right now
  uint64_t requests = 0, answers = 0, timeouts = 0, connects = 0, connect_failures = 0, drops = 0,
           late_replies = 0;
};

class Poller {
 public:
  using Sink = std::function<void(const core::SiteId&, const Reading&)>;
  // `clock` stamps readings (the scenario clock in drills); intervals and
  // timeouts are wall time. `maps` must outlive the poller.
  Poller(boost::asio::io_context& io, const core::Clock& clock, const MapRegistry& maps,
         PollerOptions options, Sink sink);
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  // Unknown map or unusable endpoint -> InvalidArgument naming the site.
  core::Status AddDevice(const DeviceSpec& spec);
  // Links for devices of another `protocol` (DeviceSpec::protocol): called
  // once per device with the link already open at its endpoint for that
  // protocol (null for the first device there); returns the link to use,
  // with the device attached. Register before AddDevice.
  using LinkFactory = std::function<core::Result<std::shared_ptr<Link>>(
      const DeviceSpec&, std::shared_ptr<Link> existing)>;
  void AddProtocol(const std::string& protocol, LinkFactory factory);
  void SetFastPoll(const core::SiteId& site, bool fast);
  void Start();
  void Stop();  // cancels every request and timer; safe to destroy afterwards
  PollerStats stats() const;

  struct Device;     // one controller: its link, map, schedule and batch (poller.cpp)
  struct Scheduler;  // when each device polls next: one timer for all (poller.cpp)

 private:
  boost::asio::io_context& io_;
  const core::Clock& clock_;
  const MapRegistry& maps_;
  PollerOptions options_;
  Sink sink_;
  std::map<core::SiteId, std::shared_ptr<Device>> devices_;
  // By endpoint: "host:port", "rtu+tcp://host:port" or "rtu:/dev/ttyS1".
  std::map<std::string, std::shared_ptr<Link>> links_;
  std::map<Link*, std::vector<Device*>> by_link_;  // for the poll phases
  std::map<std::string, LinkFactory> protocols_;   // besides modbus
  std::shared_ptr<RelocatedMaps> relocated_;
  std::shared_ptr<Scheduler> scheduler_;  // shared with its pending timer handler
  bool started_ = false;
  void AssignPhases();
  void StartPoll(Device* d);
  void SubmitPoll(Device* d);
  void OnPolled(Device* d);
  core::Status SortBlocks(Device* d);
};

// Runs `io` until it is stopped or out of work, like io.run(), but lets
// events gather: after each wake-up it handles everything ready, then does
// not look again before `coalesce` has passed since that wake-up. At
// thousands of replies a second on as many sockets, io.run() sleeps and
// wakes once per reply (a context switch and an epoll_wait each); here one
// wake-up serves every reply of the last `coalesce`, at the price of up to
// `coalesce` added to when a reply or timer is handled (keep it far below
// the poll timeout and interval: a few ms). coalesce 0 is io.run().
// Call it on the io_context's only thread.
void RunCoalesced(boost::asio::io_context& io, std::chrono::microseconds coalesce);

}  // namespace sitepower::modbus
