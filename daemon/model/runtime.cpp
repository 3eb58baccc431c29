#include "model/runtime.hpp"

#include <algorithm>
#include <cmath>

namespace sitepower::model {

// First physical model (walking skeleton): capacity from a Peukert exponent on
// the rated hour rate, derated for temperature and state of health, and a
// constant-power load integrated over a mean discharge voltage.
RuntimeBand PredictRuntime(const core::BatterySpec& b, const Load& load) {
  const bool lfp = b.chemistry == core::Chemistry::kLfp;
  const double mean_v_per_cell = lfp ? 3.2 : 1.96;
  const double volts = mean_v_per_cell * b.cells;
  double amps = load.power_w > 0 ? load.power_w / volts : load.current_a;
  if (amps <= 0) return {1e9, 1e9, 1e9, "model"};
  const double k = lfp ? 1.05 : 1.25;
  const double per_string = amps / std::max(1, b.strings);
  const double rated_i = b.capacity_ah / b.rated_hours;
  double hours = b.rated_hours * std::pow(rated_i / per_string, k);
  const double temp_factor = std::clamp(1.0 - 0.0064 * (25.0 - b.temp_c), 0.3, 1.1);
  hours *= b.soh * b.soc * (lfp ? 1.0 : temp_factor);
  double p50 = hours * 60.0;
  return {p50 * 0.85, p50, p50 * 1.15, "model"};
}

}  // namespace sitepower::model
