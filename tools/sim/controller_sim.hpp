// Simulated DC-power controllers: libmodbus TCP servers on loopback serving the
// "sunspec-802" layout (config/maps/sunspec-802.yaml) or the registers of any
// register map (modbus/map_image.hpp: what a device with that map serves),
// with fault injection.
// One thread runs one select loop for every controller, so one slow or faulty
// client never blocks the others. For drills and tests at small scale.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "modbus/register_map.hpp"

namespace sitepower::sim {

// What the controller shows; the drill's battery simulation fills it in.
struct ControllerState {
  double voltage_v = 53.5;
  double current_a = 0;  // + = discharging (shown on the wire as + = charging)
  double temp_c = 25;
  double soc_pct = 100;
  double soh_pct = 100;
  double capacity_ah = 100;
  double lvd_v = 43.2;
  bool mains_ok = true;
  bool generator_running = false;
  bool lvd_open = false;
};

enum class Fault { kNone, kTimeout, kException, kGarbage, kHalfOpen };

class ControllerFarm {
 public:
  ControllerFarm();
  ~ControllerFarm();  // stops the thread, closes every socket
  ControllerFarm(const ControllerFarm&) = delete;
  ControllerFarm& operator=(const ControllerFarm&) = delete;

  // Adds a controller listening on 127.0.0.1:<free port>; returns its index,
  // or -1 with `error` set. Call before Start(). Without a map it serves the
  // SunSpec 802 layout; with one, whatever a device with that map serves (a
  // SunSpec map on the common SunSpec chain). `map` must outlive the farm.
  int Add(std::string* error);
  int Add(const modbus::RegisterMap& map, std::string* error);
  int port(int index) const;
  // Thread-safe: update what controller `index` shows, or its fault.
  void Set(int index, const ControllerState& state);
  void SetFault(int index, Fault fault);
  // Thread-safe: how many reads of the mains status (the register or input
  // that holds it) controller `index` has answered while showing mains lost,
  // and when the last (steady clock, ns).
  struct ReplyStats {
    uint64_t di_replies = 0;
    int64_t last_di_reply_ns = 0;
  };
  ReplyStats Stats(int index) const;
  // When the n-th (1-based) of those reads was answered; 0 if not recorded.
  int64_t DiReplyNs(int index, uint64_t n) const;
  void Start();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sitepower::sim
