// YD/T 1363 point maps are data (config/ydt-maps/*.yaml): which commands to
// send (CID1, CID2, request INFO) and which items of each reply's INFO hold
// which canonical point. Pure: no I/O, no clock.
//
// A reply's INFO is read item by item, in order: a value (u8, u16, s16, u24,
// u32, s32: big-endian, as the hex pairs arrive; f32: IEEE 754, least
// significant byte first, as YD/T 1363.3 sends floats), bytes skipped, or a
// list (a u8 count, then that many values). Lists make the offsets of later
// items depend on the reply (cells per pack, battery groups per plant).
//
// What the poller decodes is the same modbus::RegisterMap as for Modbus: each
// mapped item gets "virtual registers" (command k's points live at 256*k and
// up), InfoToRegisters fills them from a reply, and DecodeReading applies the
// point's scale, offset, invert, bounds, one_of, bit and the map's mains rule.
// So mains detection, prediction and planning never learn the protocol.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "modbus/register_map.hpp"

namespace sitepower::ydt1363 {

enum class ValueType { kU8, kU16, kS16, kU24, kU32, kS32, kF32 };
size_t ValueBytes(ValueType t);
const char* ValueTypeName(ValueType t);  // "u8" ...

// One item of a reply's INFO.
struct Item {
  enum class Kind { kValue, kSkip, kList };
  Kind kind = Kind::kValue;
  ValueType type = ValueType::kU8;  // the value, or each element of a list
  size_t skip = 0;                  // kSkip: bytes
  // Mapped values: for kValue at most one (index 0), for kList any element.
  struct Pick {
    size_t index = 0;
    uint16_t slot = 0;  // first virtual register (relative to the command's base)
    std::string point;
  };
  std::vector<Pick> picks;
  int line = 0;
};

struct Command {
  std::string name;
  uint8_t cid1 = 0, cid2 = 0;
  std::vector<uint8_t> info;  // request INFO
  bool info_is_adr = false;   // request INFO is the device's ADR (BMS packs)
  std::vector<Item> reply;
  uint16_t base = 0;   // first virtual register
  uint16_t words = 0;  // virtual registers the mapped items fill
  int line = 0;
};

struct YdtMap {
  std::string name;
  std::string source;
  uint8_t ver = 0x20;
  std::vector<Command> commands;
  // The points on virtual registers (fc 3 at command.base + slot); blocks()
  // lie inside one command each. What the poller decodes.
  modbus::RegisterMap registers;
  // The command whose virtual registers hold `address`; nullptr if none.
  const Command* CommandAt(uint16_t address) const;
};

inline constexpr uint16_t kCommandStride = 256;  // virtual registers per command
inline constexpr size_t kMaxCommands = 255;

// Parses a map file's text; every error names file:line and key. Unknown
// keys, unknown points, an item after which nothing is mapped... are errors.
core::Result<YdtMap> ParseYdtMap(const std::string& yaml, const std::string& source);

// Fills `out` with `c.words` virtual registers from one reply's INFO. Items
// that start past the end of INFO (a device that sends fewer optional items)
// are absent: their registers hold the type's not-available value. Errors
// (InvalidArgument) name the command and item: "dc_analog: item 4 (list of
// f32, line 31): 200 elements run past the end of INFO (38 bytes)", "item 2
// (u16): cut off at the end of INFO".
core::Status InfoToRegisters(const Command& c, std::span<const uint8_t> info,
                             std::vector<uint16_t>* out);

// The inverse, for simulated devices: the INFO a device sends for `c` when
// its virtual registers hold `words` (c.words of them, from base). Unmapped
// values are 0; a list has as many elements as its highest picked index + 1.
std::vector<uint8_t> RegistersToInfo(const Command& c, std::span<const uint16_t> words);

// Built-in maps (config/ydt-maps/*.yaml, embedded at build time) plus every
// *.yaml in extra_dir ("" = built-ins only). A broken map is an error.
class YdtMapRegistry {
 public:
  static core::Result<YdtMapRegistry> Load(const std::string& extra_dir);
  const YdtMap* Find(const std::string& name) const;
  std::vector<std::string> Names() const;
  void Add(YdtMap map);
  // Adds every map's `registers` to a Modbus map registry (same names), so
  // the poller finds what to decode.
  void ExportTo(modbus::MapRegistry* registry) const;

 private:
  std::map<std::string, YdtMap> maps_;
};

}  // namespace sitepower::ydt1363
