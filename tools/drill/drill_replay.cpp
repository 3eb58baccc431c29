#include "drill/drill_replay.hpp"

#include <cstdio>
#include <filesystem>

namespace sitepower::drill {

namespace fs = std::filesystem;
using json = nlohmann::json;

core::Result<ReplayPlan> PrepareReplay(const DrillOptions& o, scenario::Scenario* s,
                                       std::string* damage) {
  std::error_code ec;
  if (!o.record_path.empty() && fs::equivalent(o.record_path, o.replay_path, ec))
    return core::Status::InvalidArgument("--record " + o.record_path +
                                         " is the recording being replayed");
  ReplayOptions ro;
  ro.align = o.replay_align_first_sample ? ReplayAlign::kFirstSample : ReplayAlign::kFirstMainsFail;
  if (!o.replay_at.empty()) {
    if (o.replay_at.find('T') != std::string::npos) {
      if (auto z = core::ParseIso8601(o.replay_at); z.ok()) ro.at = z->at;
    } else if (auto t = core::ParseHhMmOn(o.replay_at, s->start); t.ok()) {
      ro.at = *t;
    }
    if (!ro.at)
      return core::Status::InvalidArgument("--replay-at " + o.replay_at +
                                           ": expected HH:MM or an ISO 8601 time");
  }
  auto parsed = ReadRecordingFile(o.replay_path);
  if (!parsed.ok()) return core::Status::InvalidArgument("--replay " + parsed.status().message());
  if (!parsed->error.empty()) {
    *damage = parsed->error;
    if (parsed->samples.empty())
      return core::Status::InvalidArgument("--replay " + o.replay_path + ": " + parsed->error);
  }
  auto plan = PlanReplay(parsed->samples, ro, s);
  if (!plan.ok()) return plan.status().WithContext("--replay " + o.replay_path);
  return plan;
}

std::string JoinIds(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "" : " ") + x;
  return out.empty() ? "-" : out;
}

void PrintReplaySummary(const ReplayPlan& plan, const std::string& path, const std::string& damage,
                        int off) {
  std::printf("replay: %s: %zu samples of %zu sites, shifted %+.1f min%s%s\n", path.c_str(),
              plan.samples, plan.replayed.size(), static_cast<double>(plan.shift.count()) / 60000.0,
              plan.anchor.empty() ? "" : ": ", plan.anchor.c_str());
  if (!damage.empty())
    std::printf("replay: warning: %s: damaged at %s; replaying the %zu samples before it\n",
                path.c_str(), damage.c_str(), plan.samples_in_file);
  for (const auto& id : plan.unknown_sites)
    std::printf("replay: warning: recorded site %s is not in the scenario: skipped\n", id.c_str());
  std::printf("replay: replayed (recorded mains events and telemetry): %s\n",
              JoinIds(plan.replayed).c_str());
  std::printf("replay: simulated (the scenario's events and battery): %s\n",
              JoinIds(plan.simulated).c_str());
  for (const auto& [id, t] : plan.tracks) {
    std::printf("replay: %s: %zu samples %s..%s, mains lost %s, back %s, empty %s, holes %zu\n",
                id.c_str(), t.samples.size(), core::FormatHhMm(t.first(), off).c_str(),
                core::FormatHhMm(t.last(), off).c_str(),
                t.mains_fail_at ? core::FormatHhMm(*t.mains_fail_at, off).c_str() : "-",
                t.mains_restore_at ? core::FormatHhMm(*t.mains_restore_at, off).c_str() : "-",
                t.empty_at ? core::FormatHhMm(*t.empty_at, off).c_str() : "-", t.holes.size());
  }
  std::fflush(stdout);
}

json ReplayReportJson(const ReplayPlan& plan,
                      const std::map<std::string, const ReplayedSite*>& sites,
                      const std::string& path, const std::string& damage, int off) {
  json per_site = json::object();
  for (const auto& id : plan.replayed) {
    const ReplayedSite& r = *sites.at(id);
    const SiteTrack& t = r.track();
    auto iso = [off](const std::optional<core::TimePoint>& x) {
      return x ? json(core::FormatIso8601(*x, off)) : json(nullptr);
    };
    per_site[id] = {{"samples", t.samples.size()},
                    {"first_sample_at", iso(t.first())},
                    {"last_sample_at", iso(t.last())},
                    {"holes", t.holes.size()},
                    {"recorded_empty_at", iso(t.empty_at)},
                    {"foreign_generator_at", iso(t.foreign_generator_at)},
                    {"simulated_from", iso(r.simulated_from())},
                    {"simulated_from_state", r.simulated_from() ? json(r.basis()) : json(nullptr)}};
  }
  return {{"file", path},
          {"samples", plan.samples},
          {"sites_replayed", plan.replayed},
          {"sites_simulated", plan.simulated},
          {"unknown_sites_skipped", plan.unknown_sites},
          {"time_shift_min", static_cast<double>(plan.shift.count()) / 60000.0},
          {"anchor", plan.anchor.empty() ? json(nullptr) : json(plan.anchor)},
          {"damaged", damage.empty() ? json(nullptr) : json(damage)},
          {"sites", per_site}};
}

}  // namespace sitepower::drill
