#include "core/site.hpp"

namespace sitepower::core {

std::string_view TierName(Tier t) {
  switch (t) {
    case Tier::kVip:
      return "vip";
    case Tier::kKey:
      return "key";
    case Tier::kStandard:
      return "standard";
  }
  return "standard";
}

std::optional<Tier> ParseTier(std::string_view s) {
  if (s == "vip") return Tier::kVip;
  if (s == "key") return Tier::kKey;
  if (s == "standard") return Tier::kStandard;
  return std::nullopt;
}

std::string_view PowerStateName(PowerState s) {
  switch (s) {
    case PowerState::kUnknown:
      return "unknown";
    case PowerState::kOnMains:
      return "on_mains";
    case PowerState::kOnBattery:
      return "on_battery";
    case PowerState::kOnGenerator:
      return "on_generator";
    case PowerState::kDown:
      return "down";
    case PowerState::kStale:
      return "stale";
  }
  return "unknown";
}

std::string_view ChemistryName(Chemistry c) { return c == Chemistry::kLfp ? "lfp" : "vrla"; }

std::optional<Chemistry> ParseChemistry(std::string_view s) {
  if (s == "vrla") return Chemistry::kVrla;
  if (s == "lfp") return Chemistry::kLfp;
  return std::nullopt;
}

}  // namespace sitepower::core
