// A site farm: simulated DC-power controllers on loopback for benchmarks,
// many unit ids behind each TCP port (as behind a gateway), each answering
// after a configurable latency, a configurable share of them faulty (no
// answer, an exception, a malformed reply). One Asio event loop, no thread per
// connection: scales to 100,000 units. Each unit is a standard SunSpec 802
// device ("SunS" at 40000, model 1, model 802, the end marker: holding
// registers 40000-40135; other addresses answer exception 02, other function
// codes exception 01), or with plant_extension the layout of
// config/maps/sunspec-802-plant.yaml (the vendor extension at 40200-40201 and
// mains/generator/LVD as discrete inputs 0-2).
#pragma once

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.hpp"

namespace sitepower::farm {

struct FarmOptions {
  std::string host = "127.0.0.1";
  uint16_t first_port = 0;  // 0: any free ports
  int ports = 1;
  int units_per_port = 1;
  int latency_ms = 0;            // per request, like a slow RTU line behind a gateway
  double faulty_fraction = 0;    // share of units that misbehave
  uint64_t seed = 1;             // which units are faulty and how
  bool plant_extension = false;  // serve the sunspec-802-plant extension too
};

enum class UnitFault { kNone, kSilent, kException, kMalformed };

struct FarmStats {
  std::atomic<uint64_t> requests{0}, answered{0}, connections{0};
};

class Farm {
 public:
  Farm(boost::asio::io_context& io, FarmOptions options);
  ~Farm();
  Farm(const Farm&) = delete;
  Farm& operator=(const Farm&) = delete;

  core::Status Start();  // binds and listens on every port
  void Stop();
  const std::vector<uint16_t>& ports() const;
  UnitFault FaultOf(int port_index, int unit) const;
  const FarmStats& stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sitepower::farm
