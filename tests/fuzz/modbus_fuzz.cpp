// Modbus responses from a device that lies: the MBAP header, the read PDU and
// the decode through every built-in register map (types, word order, scale
// factors, bounds, sentinels), and the SunSpec chain walker fed the same bytes.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "modbus/codec.hpp"
#include "modbus/register_map.hpp"
#include "modbus/sunspec.hpp"

using namespace sitepower;
using namespace sitepower::modbus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const MapRegistry maps = *MapRegistry::Load("");
  std::span<const uint8_t> in(data, size);
  if (size >= kMbapHeaderSize) (void)DecodeMbapHeader(in.first(kMbapHeaderSize));
  if (size < 3) return 0;
  // First two bytes pick the function code and count; the rest is the PDU.
  const Function fcs[] = {Function::kReadCoils, Function::kReadDiscreteInputs,
                          Function::kReadHoldingRegisters, Function::kReadInputRegisters};
  Function fc = fcs[data[0] % 4];
  uint16_t count = static_cast<uint16_t>(1 + data[1] % 125);
  auto words = DecodeReadResponse(in.subspan(2), fc, count);
  // Whatever words came out (or the raw bytes as words) go through each map.
  std::vector<uint16_t> raw;
  for (size_t i = 2; i + 1 < size; i += 2) raw.push_back(static_cast<uint16_t>(data[i] << 8 | data[i + 1]));
  const std::vector<uint16_t>& pool = words.ok() ? *words : raw;
  for (const auto& name : maps.Names()) {
    const RegisterMap* m = maps.Find(name);
    std::vector<std::vector<uint16_t>> blocks;
    size_t at = 0;
    for (const auto& b : m->blocks) {
      std::vector<uint16_t> block(b.count);
      for (auto& w : block) w = pool.empty() ? 0 : pool[at++ % pool.size()];
      // Sometimes a short block: a device that answers with fewer registers.
      if (!pool.empty() && pool[0] % 7 == 0 && !block.empty()) block.pop_back();
      blocks.push_back(std::move(block));
    }
    std::vector<std::string> problems;
    (void)DecodeReading(*m, blocks, core::TimePoint{}, &problems);
  }
  SunSpecWalker walker;
  size_t at = 0;
  for (int step = 0; step < 80 && !walker.done() && walker.error().ok(); ++step) {
    auto next = walker.Next();
    if (!next) break;
    if (!pool.empty() && pool[at % pool.size()] % 11 == 0) {
      walker.FeedException("illegal data address");
      ++at;
      continue;
    }
    std::vector<uint16_t> answer(next->count);
    for (auto& w : answer) w = pool.empty() ? 0 : pool[at++ % pool.size()];
    walker.Feed(answer);
  }
  return 0;
}
