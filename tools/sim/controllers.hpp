// The drill's simulated controllers, whatever protocol each speaks: Modbus
// TCP servers (controller_sim.hpp) and YD/T 1363 devices, each alone behind
// its own serial-to-TCP converter (ydt_sim.hpp), as a site's FSU would have
// it. One index space for both, so the drill drives them alike.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sim/controller_sim.hpp"
#include "sim/ydt_sim.hpp"

namespace sitepower::sim {

class Controllers {
 public:
  Controllers();
  ~Controllers();
  Controllers(const Controllers&) = delete;
  Controllers& operator=(const Controllers&) = delete;

  // Each returns the controller's index, or -1 with `error` set. Call before
  // Start(); the maps must outlive this object.
  int Add(const modbus::RegisterMap& map, std::string* error);
  int AddYdt(uint8_t adr, const ydt1363::YdtMap& map, std::string* error);
  int port(int index) const;  // 127.0.0.1:port
  // Thread-safe. Faults on a YD/T device: timeout and half_open -> silent,
  // exception -> refused (RTN 0x05), garbage -> bad checksum.
  void Set(int index, const ControllerState& state);
  void SetFault(int index, Fault fault);
  void Start();
  void Stop();

 private:
  struct Entry {
    bool ydt = false;
    int index = -1;  // in the farm, or in ydt_
    int port = 0;
  };
  ControllerFarm farm_;
  std::vector<std::unique_ptr<YdtBus>> ydt_;
  std::vector<Entry> entries_;
};

}  // namespace sitepower::sim
