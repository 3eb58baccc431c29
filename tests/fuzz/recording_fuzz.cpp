// The telemetry recording reader on arbitrary bytes: whatever parses must
// write back and parse again to the same samples.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "recording/recording.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sitepower::recording;
  Parsed p = Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (p.valid_bytes > size) std::abort();
  Writer w;
  std::string again;
  for (const auto& s : p.samples) w.Add(s, &again);
  Parsed q = Parse(again);
  if (!q.error.empty() || q.samples.size() != p.samples.size()) std::abort();
  return 0;
}
