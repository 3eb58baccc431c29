// What RunDrill does for `--replay FILE`: reads the recording and plans the
// replay from the drill's options, prints the plan, and writes the report's
// `replay` object. The replay rules themselves: replay.hpp, replayed_site.hpp.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "drill/drill.hpp"
#include "drill/replay.hpp"
#include "drill/replayed_site.hpp"

namespace sitepower::drill {

// Reads options.replay_path (a damaged file replays what parsed before the
// damage; `damage` gets Parsed::error), applies --replay-at/--replay-align,
// plans the sources and rewrites `s`'s mains events (PlanReplay). Errors
// name the file or the option: unreadable or empty file, damage before the
// first sample, nothing of the scenario in it, a bad --replay-at, --record
// naming the file being replayed.
core::Result<ReplayPlan> PrepareReplay(const DrillOptions& options, scenario::Scenario* s,
                                       std::string* damage);

// Prints the plan: shift and anchor, damage, skipped sites, which sites are
// replayed and which simulated, each replayed site's track.
void PrintReplaySummary(const ReplayPlan& plan, const std::string& path, const std::string& damage,
                        int offset_min);

// The drill report's `replay` object (tools/drill/README.md).
nlohmann::json ReplayReportJson(const ReplayPlan& plan,
                                const std::map<std::string, const ReplayedSite*>& sites,
                                const std::string& path, const std::string& damage, int offset_min);

// "A B C", or "-" for none.
std::string JoinIds(const std::vector<std::string>& ids);

}  // namespace sitepower::drill
