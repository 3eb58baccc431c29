// Simulated YD/T 1363 devices: one RS-485 bus behind a serial-to-TCP
// converter on 127.0.0.1:<free port>, or behind a pseudo-terminal (the daemon
// opens its slave path as a serial line). Each device has an ADR and a point
// map (ydt1363/point_map.hpp) and answers the map's commands with what the
// map says a device showing `ControllerState` sends; unknown commands get RTN
// 0x04 (CID2 invalid). Faults per device: silent (dead), bad checksum,
// refuse (RTN 0x05), late (the reply comes after `late_by`), truncated (the
// reply stops three characters short: no EOI).
//
// One thread runs an Asio io_context for the whole bus, like the half-duplex
// line it stands for: requests are answered one at a time, in order.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "sim/controller_sim.hpp"
#include "ydt1363/point_map.hpp"

namespace sitepower::sim {

enum class YdtFault { kNone, kSilent, kBadChecksum, kRefuse, kLate, kTruncated };

class YdtBus {
 public:
  YdtBus();
  ~YdtBus();  // stops the thread, closes everything
  YdtBus(const YdtBus&) = delete;
  YdtBus& operator=(const YdtBus&) = delete;

  // Adds a device at `adr` with `map` (which must outlive the bus); returns
  // its index, or -1 with `error` set (ADR taken). Call before Start().
  int Add(uint8_t adr, const ydt1363::YdtMap& map, std::string* error);
  // Serves the bus on TCP (returns the port) or a pty (returns its slave
  // path); call one of them once, before Start(). 0 / "" with `error` set.
  uint16_t ListenTcp(std::string* error);
  std::string OpenPty(std::string* error);
  void Start();
  void Stop();

  // Thread-safe.
  void Set(int index, const ControllerState& state);
  void SetFault(int index, YdtFault fault, std::chrono::milliseconds late_by = {});
  uint64_t replies(int index) const;  // frames this device has sent back
  uint64_t requests_heard() const;    // valid frames on the bus, for anyone

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sitepower::sim
