// Register maps are data (config/maps/*.yaml): which registers hold which
// canonical point, and how to decode them. Vendor words stay in the map file;
// what leaves this module is the canonical Reading.
#pragma once

#include <map>
#include <memory>
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
  // AC input voltage of the plant (phase 1, or the only phase) and phases 2
  // and 3. A map's `mains:` rule derives mains_ok from them.
  PointValue ac_voltage_v, ac_voltage_l2_v, ac_voltage_l3_v;
  // Values the map's bounds rejected in this poll ("battery_voltage_v=912.3 V
  // out of [0, 100]"); they are absent above. Empty nearly always.
  std::vector<std::string> problems;
  // Who the device says it is (SunSpec common model 1: "manufacturer model
  // version serial"), once discovery read it; null for maps without it.
  std::shared_ptr<const std::string> identity;
  // Set: the map's `mains:` rule takes mains from the battery current, and
  // mains_ok is not read. A battery discharging more than this many A carries
  // the load (mains lost); less means mains (or a generator) carries it.
  // Without a good battery_current_a, mains is unknown.
  std::optional<double> mains_lost_above_discharge_a;
  // Points this device does not have: the blocks it refused with exception
  // 01 or 02 ("battery_temp_c, lvd_v (fc 3 register 40200+2: exception 0x02
  // (illegal data address))"); null when it has every point of its map. The
  // poller hands every reading the same pointer until that changes.
  std::shared_ptr<const std::string> absent_points;
};

enum class ValueType { kU16, kS16, kU32, kS32, kF32, kBit };
enum class WordOrder { kHighFirst, kLowFirst };  // 32-bit values: ABCD vs CDAB

// How one register (or bit) becomes a canonical value:
//   raw word(s) -> absent if listed in `absent` or a type sentinel (0xFFFF,
//   0x8000, 0xFFFFFFFF, 0x80000000, NaN; never for bits)
//   -> bit:    the coil/input, or bit `bit` of the register      -> 0/1
//   -> one_of: 1 if the raw integer is one of the listed values  -> 0/1
//   -> number: raw x scale (or x 10^sf) + offset
//   -> invert (negate a number, NOT a 0/1) -> outside min/max = absent + problem.
struct PointSpec {
  std::string name;                      // canonical point name (see PointNames())
  PointValue Reading::*field = nullptr;  // where `name` lives in a Reading (set by the parser)
  Function fc = Function::kReadHoldingRegisters;
  uint16_t address = 0;  // PDU address (0-based) after applying the map's address_base
  ValueType type = ValueType::kU16;
  WordOrder word_order = WordOrder::kHighFirst;
  double scale = 1.0;                // fixed scale
  std::optional<uint16_t> scale_sf;  // SunSpec-style: value x 10^(int16 at this address)
  double offset = 0.0;               // added after scaling, before invert
  bool invert = false;               // negate (numbers) or NOT (bits)
  std::optional<double> min, max;    // plausibility bounds: outside = absent + error
  std::optional<int> bit;            // type bit on fc 3/4: bit 0 (LSB) .. 15 of the register
  std::vector<uint32_t> absent;      // raw values (16 or 32 bits, as on the wire) = not available
  std::vector<int64_t> one_of;       // non-empty: an enum register read as 1 when one of these
  int line = 0;
  int Words() const;  // registers the value spans (2 for 32-bit types)
};

// How a map without a mains_ok point shows mains. Either from AC input
// voltage points: a phase is up when its voltage is above ok_above_v; mains
// is ok when any phase is up (require_all: every phase that was read).
// Phases that were not read are left out; with none read, mains_ok is absent.
// Or (from: battery_current_a) from the current's direction: DecodeReading
// leaves mains_ok absent and sets Reading::mains_lost_above_discharge_a, and
// the site's tracker (site_state.hpp) takes a battery discharging more than
// discharging_above_a as mains lost. A map with neither shows mains unknown.
struct MainsRule {
  std::vector<std::string> from;              // ac_voltage_v, ac_voltage_l2_v, ac_voltage_l3_v
  std::vector<PointValue Reading::*> fields;  // the same, as Reading members
  double ok_above_v = 0;
  bool require_all = false;
  bool from_current = false;  // from: battery_current_a (fields empty)
  double discharging_above_a = 1.0;
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
  std::optional<MainsRule> mains;  // set: mains_ok comes from AC voltage, not from a point
  std::vector<ReadBlock> blocks;   // coalesced reads covering points and scale factors
};

// Canonical point names a map may use.
const std::vector<std::string>& PointNames();
// The Reading field for a canonical name; nullptr for an unknown name.
PointValue* ReadingSlot(Reading& r, const std::string& name);
// ac_voltage_v, ac_voltage_l2_v, ac_voltage_l3_v: what a `mains:` rule may read.
bool IsAcVoltagePoint(const std::string& name);
// The raw value a type reserves for "not implemented" (what a device serves
// for a value it does not have): 0xFFFF, 0x8000, 0xFFFFFFFF, 0x80000000, a
// quiet NaN for f32 (any non-finite f32 decodes as absent); none for bits.
std::optional<uint32_t> TypeSentinel(ValueType t);

// Coalesces the registers the points (and scale factors) need into as few
// reads as the map allows (gaps of up to 32 registers are read through).
std::vector<ReadBlock> CoalesceReads(const RegisterMap& m);

// Parses a map file's text; every error names file:line and key. Addresses
// are read with the map's address_base: 0 (PDU addresses), 1 (register
// numbers, PDU + 1) or modicon (the fc's reference ranges: coils 1-9999,
// discrete inputs 10001-19999, input registers 30001-39999, holding registers
// 40001-49999; e.g. 30001 is input register PDU address 0).
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
