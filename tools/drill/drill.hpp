// Plays a FORMAT.md scenario against the real sitepowerd: simulated
// controllers and batteries, simulated crews over gRPC, the scenario clock
// time-warped, fault injection, and the drill report.
#pragma once

#include <string>
#include <vector>

#include "scenario/scenario.hpp"

namespace sitepower::drill {

struct DrillOptions {
  std::string scenario_path;
  double speed = 60;
  std::string report_path;
  std::string daemon_path;  // default: sitepowerd next to this binary
  std::string work_dir;     // default: a fresh temp dir, removed at the end
  // Crews left to an outside client (no simulated crew); their gRPC address
  // and token are printed.
  std::vector<std::string> external_crews;
  std::vector<std::string> chaos;  // extra fault events, see ParseChaos
  bool quiet = false;
  std::string policy = "optimize";  // the daemon's planner.policy: optimize | seed-rule
  double hold_s = 0;                // keep the daemon (and dashboard) up this long after the end
  bool tls = false;                 // gRPC over TLS: a fresh self-signed certificate for 127.0.0.1
  std::string record_path;          // the daemon records its telemetry here (replaced if it exists)
  // Replay (replay.hpp): the recorded sites' controllers show this recording.
  std::string replay_path;
  std::string replay_at;                   // "HH:MM" (scenario date) or ISO 8601; "" = absolute
  bool replay_align_first_sample = false;  // anchor: first sample instead of first mains failure
};

// "daemon_kill@09:40:30" (restart after 30 s), "controller_fault@09:20:WZ-02:timeout:20",
// "crew_unavailable@10:00:A1", "crew_link_cut@09:50:B1:15"
core::Result<scenario::Event> ParseChaos(const std::string& spec, const scenario::Scenario& s);

// Runs the drill; returns the process exit code (0 when the drill ran).
int RunDrill(const DrillOptions& options);

}  // namespace sitepower::drill
