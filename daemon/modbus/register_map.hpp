// Register maps are data (config/maps/*.yaml): which registers hold which
// canonical point, and how to decode them. Vendor words stay in the map file;
// what leaves this module is the canonical Reading.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "core/time.hpp"
#include "modbus/codec.hpp"

namespace sitepower::modbus {

enum class Quality { kGood, kStale, kAbsent };

struct PointValue {
  double value = 0;
  core::TimePoint ts{};
  Quality quality = Quality::kAbsent;
};

// The canonical, vendor-neutral point set of one site.
struct Reading {
  core::TimePoint at{};  // when this poll completed (daemon clock)
  bool poll_ok = false;  // false: this poll failed (timeout, exception, garbage...)
  std::string error;     // why, naming site and register, when !poll_ok
  PointValue mains_ok;   // 1 = mains present
  PointValue battery_voltage_v;
  PointValue battery_current_a;  // + = discharging
  PointValue battery_temp_c, soc_pct, remaining_ah, lvd_v, lvd_open, generator_running, alarms;
};

enum class ValueType { kU16, kS16, kU32, kS32, kF32, kBit };
enum class WordOrder { kHighFirst, kLowFirst };  // 32-bit values: ABCD vs CDAB

struct PointSpec {
  std::string name;  // canonical point name (see kPointNames)
  Function fc = Function::kReadHoldingRegisters;
  uint16_t address = 0;  // PDU address (0-based) after applying the map's address_base
  ValueType type = ValueType::kU16;
  WordOrder word_order = WordOrder::kHighFirst;
  double scale = 1.0;                // fixed scale
  std::optional<uint16_t> scale_sf;  // SunSpec-style: value x 10^(int16 at this address)
  bool invert = false;               // negate (numbers) or NOT (bits)
  std::optional<double> min, max;    // plausibility bounds: outside = absent + error
  int line = 0;
};

// One read request that covers several points.
struct ReadBlock {
  Function fc;
  uint16_t address;
  uint16_t count;
};

struct RegisterMap {
  std::string name;
  std::string source;  // file it came from
  // Non-zero: the device is SunSpec; its chain is discovered (sunspec.hpp) and
  // the points inside this model are moved from where the map assumes the
  // model header (sunspec_model_address, body sunspec_model_length registers)
  // to where the device has it.
  uint16_t sunspec_model = 0;
  uint16_t sunspec_model_address = 0;
  uint16_t sunspec_model_length = 0;
  uint16_t max_block = kMaxRegistersPerRead;
  int max_connections = 1;  // the poller opens one per endpoint (<= any limit)
  int max_in_flight = 1;    // requests outstanding at once on that connection
  std::vector<PointSpec> points;
  std::vector<ReadBlock> blocks;  // coalesced reads covering points and scale factors
};

// Canonical point names a map may use.
const std::vector<std::string>& PointNames();

// Coalesces the registers the points (and scale factors) need into as few
// reads as the map allows (gaps of up to 32 registers are read through).
std::vector<ReadBlock> CoalesceReads(const RegisterMap& m);

// Parses a map file's text; every error names file:line and key.
core::Result<RegisterMap> ParseRegisterMap(const std::string& yaml, const std::string& source);

// Decodes the blocks' data (same order as map.blocks) into a Reading stamped
// `at`. A value outside its bounds or a not-implemented sentinel is absent;
// bound violations are listed in `problems` ("battery_voltage_v=912.3 V out of [0, 100]").
Reading DecodeReading(const RegisterMap& map, const std::vector<std::vector<uint16_t>>& data,
                      core::TimePoint at, std::vector<std::string>* problems);

class MapRegistry {
 public:
  // Built-in maps (embedded at build time from config/maps/*.yaml) plus every
  // *.yaml in extra_dir ("" = built-ins only). A broken map is an error.
  static core::Result<MapRegistry> Load(const std::string& extra_dir);
  bool Has(const std::string& name) const { return maps_.count(name) > 0; }
  const RegisterMap* Find(const std::string& name) const;
  std::vector<std::string> Names() const;
  void Add(RegisterMap map);

 private:
  std::map<std::string, RegisterMap> maps_;
};

}  // namespace sitepower::modbus
