// YD/T 1363 replies from a device (or a bus) that lies: the frame splitter on
// the raw stream, the frame decoder, the reply check, and every built-in
// point map's INFO walk (lists whose counts run past the end, cut-off values)
// into the shared register decoding. Also checks that what decodes
// re-encodes to the same bytes (modulo lower-case hex).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "modbus/register_map.hpp"
#include "ydt1363/frame.hpp"
#include "ydt1363/point_map.hpp"

using namespace sitepower;
using namespace sitepower::ydt1363;

namespace {

void WalkMaps(const YdtMapRegistry& maps, std::span<const uint8_t> info) {
  for (const auto& name : maps.Names()) {
    const YdtMap* m = maps.Find(name);
    std::vector<std::vector<uint16_t>> data;
    for (const auto& b : m->registers.blocks) {
      const Command* c = m->CommandAt(b.address);
      if (!c) std::abort();  // every block lies inside a command
      std::vector<uint16_t> regs;
      if (!InfoToRegisters(*c, info, &regs).ok()) regs.assign(c->words, 0);
      if (regs.size() != c->words) std::abort();
      const size_t from = b.address - c->base;
      if (from + b.count > regs.size()) std::abort();
      data.emplace_back(regs.begin() + from, regs.begin() + from + b.count);
    }
    std::vector<std::string> problems;
    (void)modbus::DecodeReading(m->registers, data, core::TimePoint{}, &problems);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const YdtMapRegistry maps = *YdtMapRegistry::Load("");
  std::span<const uint8_t> in(data, size);
  FrameSplitter splitter;
  splitter.Feed(in);
  for (auto f = splitter.Next(); !f.empty(); f = splitter.Next()) {
    auto frame = DecodeFrame(f);
    if (!frame.ok()) continue;
    Frame request = *frame;
    request.cid2 = 0x42;
    (void)CheckReply(*frame, request);
    // A decoded frame encodes to the same length and, upper-cased, the same bytes.
    std::vector<uint8_t> again = EncodeFrame(*frame);
    if (again.size() != f.size()) std::abort();
    for (size_t i = 0; i < f.size(); ++i)
      if (again[i] != (f[i] >= 'a' && f[i] <= 'f' ? f[i] - 32 : f[i])) std::abort();
    WalkMaps(maps, frame->info);
  }
  // The raw bytes as an INFO too: the map walk without a valid frame around it.
  WalkMaps(maps, in);
  return 0;
}
