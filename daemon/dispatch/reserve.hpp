// The generator reserve: when generators are scarcer than the sites that
// will need them, a few are kept for VIP and key sites that still have mains
// but may lose it next (a storm moving across the region). Pure.
#pragma once

#include <vector>

#include "dispatch/planner.hpp"

namespace sitepower::dispatch {

// A VIP or key site whose mains have not failed (yet).
struct SiteOnMains {
  core::SiteId id;
  core::LatLon location;
  core::Tier tier = core::Tier::kStandard;
};

// Sets CrewState::reserved_for in `input`. `failed_fraction` is the share of
// the region's sites on battery now: the chance taken that a VIP or key site
// on mains fails too. Scarce means the crews' generators are fewer than the
// sites that need one now plus the VIP/key sites expected to fail
// (failed_fraction x their count); then that many (rounded up, VIP first)
// are held, each by the crew nearest to it that still has a generator to
// hold. Not scarce: no reserve. Returns how many generators are held.
int ReserveGenerators(PlanInput& input, const std::vector<SiteOnMains>& on_mains,
                      double failed_fraction);

}  // namespace sitepower::dispatch
