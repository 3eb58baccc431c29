// The outage scenario parser (FORMAT.md) on arbitrary text, and the plan
// JSON reader (input starting with '{') against the Wuzhai scenario.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "scenario/scenario.hpp"

using namespace sitepower;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::optional<scenario::Scenario> wuzhai = []() -> std::optional<scenario::Scenario> {
    auto s = scenario::LoadScenarioFile(SITEPOWER_SHARED_DIR "/scenarios/wuzhai-2020-03-08.yaml");
    if (!s.ok()) return std::nullopt;
    return *s;
  }();
  std::string text(reinterpret_cast<const char*>(data), size);
  if (!text.empty() && text[0] == '{') {
    if (wuzhai) (void)scenario::PlanFromJson(text, *wuzhai);
    return 0;
  }
  (void)scenario::LoadScenarioString(text, "fuzz.yaml");
  return 0;
}
