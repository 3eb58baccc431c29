#pragma once

namespace sitepower::ctl {

// sitepowerctl plan SCENARIO [--at HH:MM] [--json] [--budget-ms N]
//                            [--algorithm best|seed|nearest]
// Exit 0 on success, 2 on bad arguments or a bad scenario (errors name file:line).
int RunPlanCommand(int argc, char** argv);

}  // namespace sitepower::ctl
