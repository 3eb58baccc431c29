// sitepowerctl: the operator's command line.
//   sitepowerctl plan SCENARIO [--at HH:MM] [--json] [--budget-ms N]
//   sitepowerctl predict --chemistry vrla|lfp ... [--json]
//   sitepowerctl queue --server HOST:PORT --token T [--watch] [--json]
//   sitepowerctl override --server HOST:PORT --token T ACTION ...
#include <cstdio>
#include <string>

#include "ctl/plan_cmd.hpp"
#include "ctl/predict_cmd.hpp"
#include "ctl/queue_cmd.hpp"
#include "ctl/recording_cmd.hpp"

namespace {
void Usage() {
  std::fprintf(
      stderr,
      "usage: sitepowerctl COMMAND [ARGS]\n"
      "  plan SCENARIO [--at HH:MM] [--json] [--budget-ms N]   plan a scenario offline\n"
      "  predict --chemistry vrla|lfp --cells N ... [--json]    battery runtime band\n"
      "  queue --server HOST:PORT --token T [--watch] [--json]  the live queue\n"
      "  override --http HOST:PORT --token T ACTION ...         pin/protect/hold/cancel\n"
      "  recording FILE [--site ID]                             telemetry recording as CSV\n"
      "Run 'sitepowerctl COMMAND --help' for a command's options.\n");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Usage();
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "plan") return sitepower::ctl::RunPlanCommand(argc - 1, argv + 1);
  if (cmd == "predict") return sitepower::ctl::RunPredictCommand(argc - 1, argv + 1);
  if (cmd == "queue") return sitepower::ctl::RunQueueCommand(argc - 1, argv + 1);
  if (cmd == "override") return sitepower::ctl::RunOverrideCommand(argc - 1, argv + 1);
  if (cmd == "recording") return sitepower::ctl::RunRecordingCommand(argc - 1, argv + 1);
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    Usage();
    return 0;
  }
  std::fprintf(stderr, "sitepowerctl: unknown command '%s'\n", cmd.c_str());
  Usage();
  return 2;
}
