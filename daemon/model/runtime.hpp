// Battery runtime prediction from a state: plain functions over plain data
// (no I/O, no clock, no threads). The physics is in curve.hpp; the online
// estimator that corrects it from live telemetry is in estimator.hpp.
#pragma once

#include <string>

#include "core/site.hpp"
#include "model/curve.hpp"

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
  double p10_min = 0;  // pessimistic: a VIP's deadline
  double p50_min = 0;
  double p90_min = 0;  // optimistic
  std::string basis;   // how it was obtained, for operators: "curve", "table", "telemetry", ...
};

// How sure the inputs are, as relative standard deviations (log scale).
// Defaults: nameplate state of health (a survey, not a measurement) and an
// exactly known load, as in datasheet tables.
struct Confidence {
  double soh_sigma = 0.05;   // state of health / capacity
  double load_sigma = 0.0;   // 0.03 for a measured load, ~0.15 for a configured estimate
  double soc_sigma = 0.0;    // absolute, on the state of charge
  double extra_sigma = 0.0;  // widening for degraded telemetry
};

// The rate curve's own error at a runtime from full of `hours`: the median
// shift (log) and relative standard deviation that the generic VRLA curve
// showed on batteries it was not fitted to (CurveErrorModel), or a datasheet
// table's (the battery's own: no shift, 4 %), or LFP's (no published tables:
// 10 %, a judgement, not a measurement).
struct CurveError {
  double shift = 0;
  double sigma = 0;
};
CurveError CurveErrorAt(const core::BatterySpec& b, double hours,
                        const VrlaCurve& curve = GenericVrlaCurve());

// Turns a median runtime and a log-normal sigma into a P10/P50/P90 band.
RuntimeBand MakeBand(double p50_min, double sigma, std::string basis);

// Runtime from the state in `battery` (soc, soh, temp_c) at a constant load:
// the curve's runtime moved by its shift, the band from its error at this
// rate and end voltage and the uncertainty of the inputs.
// A zero load gives an effectively infinite band (1e9 min); never fails.
RuntimeBand PredictRuntime(const core::BatterySpec& battery, const Load& load,
                           const Confidence& confidence = {},
                           const VrlaCurve& curve = GenericVrlaCurve());

// The curve's minutes (before CurveError's shift) from a consumed fraction
// `used` (0 = full) with the capacity multiplied by `scale` (state of health x
// temperature x learned correction).
double RemainingMinutes(const core::BatterySpec& battery, const Load& load, double scale,
                        double used, const VrlaCurve& curve = GenericVrlaCurve());

// The baseline common battery monitors use: one Peukert exponent (1.25) on
// the rated capacity, the load divided by the nominal voltage. Kept for the
// evaluation and the benchmark.
double PeukertMinutes(const core::BatterySpec& battery, const Load& load, double exponent = 1.25);

}  // namespace sitepower::model
