#pragma once
namespace sitepower::ctl {
// sitepowerctl recording FILE [--site ID]: the samples as CSV (t_s, site,
// voltage_v, current_a, temp_c, soc, mains_ok, generator_running, lvd_open);
// with --site, the columns `predict --trace` reads.
int RunRecordingCommand(int argc, char** argv);
}  // namespace sitepower::ctl
