// The register image a device with a given map serves for given canonical
// values: the inverse of DecodeReading, for simulated controllers and tests
// (a round trip through every built-in map). Pure: no I/O, no clock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "modbus/codec.hpp"
#include "modbus/register_map.hpp"

namespace sitepower::modbus {

// Canonical values of one site. nullopt: the device does not know the value
// and serves the point's not-available value (its first `absent` entry, else
// the type sentinel; a bit is left out of the image).
struct CanonicalValues {
  std::optional<double> battery_voltage_v;
  std::optional<double> battery_current_a;  // + = discharging
  std::optional<double> battery_temp_c, soc_pct, remaining_ah, lvd_v, alarms;
  std::optional<bool> mains_ok, lvd_open, generator_running;
  std::optional<double> ac_voltage_v, ac_voltage_l2_v, ac_voltage_l3_v;
};

// The value of a canonical point by name (PointNames()); bits as 0/1.
std::optional<double> CanonicalValue(const CanonicalValues& v, const std::string& name);

struct RegisterImage {
  // Per function code, PDU address -> word (coils and discrete inputs as 0/1).
  std::map<Function, std::map<uint16_t, uint16_t>> words;
  // Per point name, the step the map can express near the encoded value
  // (its scale, 10^sf, the float's precision; 0 for 0/1 points).
  std::map<std::string, double> resolution;

  std::optional<uint16_t> Get(Function fc, uint16_t address) const;
  // The words a poll of `map` reads, one vector per map.blocks entry (the
  // shape DecodeReading takes); addresses the image lacks read as `fill`.
  std::vector<std::vector<uint16_t>> Blocks(const RegisterMap& map, uint16_t fill = 0) const;
};

// Encodes `values` as the device described by `map` would serve them: type,
// word order, scale or scale-factor register (the finest exponent every user
// of that register fits in is chosen and written), offset, invert, bit inside
// a register, one_of enums, and the AC voltage behind a `mains:` rule (when
// only mains_ok is given, every phase is served at max(230 V, 1.1 x the
// threshold) for ok and 0 V for lost). InvalidArgument naming the point when
// a value cannot be served: outside the map's min/max, not representable in
// the register, equal to a not-available value, contradicting another point
// on the same register, or mains_ok contradicting the given AC voltages.
core::Result<RegisterImage> EncodeImage(const RegisterMap& map, const CanonicalValues& values);

}  // namespace sitepower::modbus
