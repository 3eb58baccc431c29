// sitepower-drill: plays an outage scenario against the real sitepowerd.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "drill/drill.hpp"

namespace {
int Usage(int code) {
  std::fprintf(
      stderr,
      "usage: sitepower-drill SCENARIO [--speed N] [--report FILE] [--policy P]\n"
      "                       [--daemon PATH]\n"
      "                       [--keep-dir DIR] [--chaos SPEC]... [--hold-s N] [--tls] [--quiet]\n"
      "                       [--external-crew ID]...\n"
      "                       [--record FILE] [--replay FILE [--replay-at HH:MM]\n"
      "                       [--replay-align first-fail|first-sample]]\n"
      "  --speed N     scenario minutes per wall minute (default 60; up to 600)\n"
      "  --report F    write the FORMAT.md drill report (JSON) to F\n"
      "  --policy P    the daemon's planner: optimize (default) or seed-rule (VIP first,\n"
      "                then key, then by predicted endurance; the baseline to compare)\n"
      "  --chaos SPEC  add faults (repeatable, or comma-separated):\n"
      "                daemon_kill@HH:MM:RESTART_AFTER_S\n"
      "                controller_fault@HH:MM:SITE:timeout|exception|garbage|half_open:FOR_MIN\n"
      "                crew_unavailable@HH:MM:CREW   crew_link_cut@HH:MM:CREW:FOR_MIN\n"
      "  --hold-s N    keep the daemon and dashboard up N s after the drill ends\n"
      "  --keep-dir D  work in D and keep it (default: a temp dir, removed at the end)\n"
      "  --external-crew ID  no simulated crew ID: an outside client plays it (its gRPC\n"
      "                address and token are printed); repeatable\n"
      "  --tls         the crews talk to the daemon over TLS (a self-signed certificate\n"
      "                for 127.0.0.1 is made in the work dir)\n"
      "  --record F    the daemon records its telemetry to F (config recording:;\n"
      "                an existing F is replaced)\n"
      "  --replay F    the sites in recording F show what was recorded (the scenario\n"
      "                gives sites, crews, travel, weights, horizon); other sites and\n"
      "                crews as the scenario says. See tools/drill/README.md\n"
      "  --replay-at T shift the recording so its first mains failure (or with\n"
      "                --replay-align first-sample, its first sample) lands at T\n"
      "                (HH:MM on the scenario's date, or ISO 8601); default: as recorded\n");
  return code;
}
}  // namespace

int main(int argc, char** argv) {
  sitepower::drill::DrillOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&i, argc, argv]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--help" || a == "-h") return Usage(0);
    if (a == "--quiet") {
      o.quiet = true;
      continue;
    }
    if (a == "--tls") {
      o.tls = true;
      continue;
    }
    if (a.rfind("--", 0) == 0) {
      const char* v = next();
      if (!v) return Usage(2);
      if (a == "--speed")
        o.speed = std::atof(v);
      else if (a == "--policy" && (std::string(v) == "optimize" || std::string(v) == "seed-rule"))
        o.policy = v;
      else if (a == "--report")
        o.report_path = v;
      else if (a == "--daemon")
        o.daemon_path = v;
      else if (a == "--keep-dir")
        o.work_dir = v;
      else if (a == "--external-crew")
        o.external_crews.push_back(v);
      else if (a == "--chaos") {
        // Several faults may come in one argument, separated by commas.
        std::string list = v;
        for (size_t start = 0, comma; start <= list.size(); start = comma + 1) {
          comma = list.find(',', start);
          if (comma == std::string::npos) comma = list.size();
          if (comma > start) o.chaos.push_back(list.substr(start, comma - start));
        }
      } else if (a == "--hold-s")
        o.hold_s = std::atof(v);
      else if (a == "--record")
        o.record_path = v;
      else if (a == "--replay")
        o.replay_path = v;
      else if (a == "--replay-at")
        o.replay_at = v;
      else if (a == "--replay-align" &&
               (std::string(v) == "first-fail" || std::string(v) == "first-sample"))
        o.replay_align_first_sample = std::string(v) == "first-sample";
      else
        return Usage(2);
      continue;
    }
    if (!o.scenario_path.empty()) return Usage(2);
    o.scenario_path = a;
  }
  if (o.scenario_path.empty() || o.speed <= 0 || o.speed > 3600) return Usage(2);
  if (o.replay_path.empty() && (!o.replay_at.empty() || o.replay_align_first_sample)) {
    std::fprintf(stderr, "sitepower-drill: --replay-at and --replay-align need --replay FILE\n");
    return 2;
  }
  return sitepower::drill::RunDrill(o);
}
