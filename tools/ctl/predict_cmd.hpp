#pragma once

namespace sitepower::ctl {

// sitepowerctl predict --chemistry vrla|lfp --cells N --capacity-ah AH --rated-hours H
//   [--strings S] [--soh X] [--soc X] [--temp-c T] --end-v-per-cell V
//   (--current-a A | --power-w W) [--trace FILE.csv] [--json]
int RunPredictCommand(int argc, char** argv);

}  // namespace sitepower::ctl
