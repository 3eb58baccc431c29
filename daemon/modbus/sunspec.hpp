// SunSpec discovery: find the "SunS" marker (40000, 0, 50000 and +-1 for
// address-base confusion), walk the model chain, and move a map written for
// the common layout onto where this device really keeps its model. Pure: the
// walker says what to read next and is fed the answers, so it is tested
// without sockets; the poller does the I/O and caches the result per device.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "modbus/register_map.hpp"

namespace sitepower::modbus {

inline constexpr uint16_t kSunSpecMarkerHi = 0x5375;  // "Su"
inline constexpr uint16_t kSunSpecMarkerLo = 0x6E53;  // "nS"
inline constexpr uint16_t kSunSpecEndOfChain = 0xFFFF;
inline constexpr int kSunSpecMaxModels = 64;  // a longer chain is treated as garbage

// Where the marker is looked for, in order (FIELD-NOTES §3 row 7).
const std::vector<uint16_t>& SunSpecProbeAddresses();

struct SunSpecModel {
  uint16_t id = 0;
  uint16_t address = 0;  // of the 2-register header (id, length)
  uint16_t length = 0;   // body registers after the header
};

struct SunSpecChain {
  uint16_t marker = 0;
  std::vector<SunSpecModel> models;
  const SunSpecModel* Find(uint16_t id) const;
  std::string ToString() const;  // "SunS@40000: 1@40002(66) 802@40070(62)"
};

class SunSpecWalker {
 public:
  SunSpecWalker();
  // The FC03 read to do next, or nullopt when done() or failed.
  std::optional<ReadBlock> Next() const;
  // The words read for Next().
  void Feed(std::span<const uint16_t> words);
  // The device answered Next() with a Modbus exception (e.g. illegal address):
  // while probing, try the next candidate; inside the chain, fail.
  void FeedException(const std::string& why);
  bool done() const { return done_; }
  // Set when the walk cannot succeed: no marker anywhere, broken chain...
  const core::Status& error() const { return error_; }
  const SunSpecChain& chain() const { return chain_; }

 private:
  void Fail(std::string why);
  size_t probe_ = 0;  // index into SunSpecProbeAddresses() while probing
  bool probing_ = true;
  bool done_ = false;
  uint16_t cursor_ = 0;  // next model header address once the marker is found
  std::vector<std::string> misses_;
  core::Status error_;
  SunSpecChain chain_;
};

// SunSpec common model 1: who the device is.
struct DeviceIdentity {
  std::string manufacturer, model, options, version, serial;
  // "Mn Md Vr serial SN", the parts that are present.
  std::string ToString() const;
};
inline constexpr uint16_t kCommonModelId = 1;
inline constexpr uint16_t kCommonModelMinLength = 64;  // Mn16 Md16 Opt8 Vr8 SN16
// Decodes the body of model 1 (after its 2-register header). Strings are two
// characters a register, high byte first, NUL-padded; unprintable bytes
// become '?'. InvalidArgument when the body is too short.
core::Result<DeviceIdentity> DecodeCommonModel(std::span<const uint16_t> body);

// The map with its SunSpec-model registers moved to where `chain` has the
// map's model (map.sunspec_model, written for a header at
// map.sunspec_model_address and a body of map.sunspec_model_length);
// registers outside that model (vendor extensions) stay where they are. Blocks are re-coalesced.
// FailedPrecondition when the model is missing or shorter than the map needs.
core::Result<RegisterMap> RelocateToChain(const RegisterMap& map, const SunSpecChain& chain);

}  // namespace sitepower::modbus
