// The daemon's YAML config and the register-map loader on arbitrary text: an
// error names its place, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "app/config.hpp"
#include "modbus/register_map.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)sitepower::app::LoadConfigString(text, "fuzz.yaml");
  (void)sitepower::modbus::ParseRegisterMap(text, "fuzz-map.yaml");
  return 0;
}
