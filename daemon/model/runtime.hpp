// Battery runtime prediction. Pure: no I/O, no clock, no threads.
#pragma once

#include <string>

#include "core/site.hpp"

namespace sitepower::model {

// The site's DC load. Telecom loads draw constant power (current rises as the
// voltage falls); set power_w for that. current_a > 0 (and power_w == 0) means
// a constant-current load, as in datasheet tables.
struct Load {
  double power_w = 0;
  double current_a = 0;
};

// Minutes until the battery reaches its end voltage, as a band.
struct RuntimeBand {
  double p10_min = 0;  // pessimistic
  double p50_min = 0;
  double p90_min = 0;  // optimistic
  std::string basis;   // how it was obtained, for operators: "model", "table", "telemetry"
};

// Runtime from the state in `battery` (soc, soh, temp_c) at a constant load.
// A zero load gives an effectively infinite band (1e9 min); never fails.
RuntimeBand PredictRuntime(const core::BatterySpec& battery, const Load& load);

}  // namespace sitepower::model
