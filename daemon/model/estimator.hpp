// Online correction of the prediction from live telemetry during an outage:
// an extended Kalman filter on three states: the fraction of the string's
// deliverable charge already spent (coulomb counting, at the rate-dependent
// capacity), a capacity scale (state of health x anything the curve gets
// wrong for this battery) and this battery's voltage offset from the generic
// voltage curve (no two batteries sit at the same level, so the level alone
// proves little; the way the voltage falls against the charge drawn, and the
// knee, tell the state and the capacity). The measured load replaces the
// configured one at once. Bad telemetry (missing, frozen, out
// of physical range, wrong sign) is flagged and skipped: the prediction falls
// back to the model and its band widens.
// Pure: samples in, bands out; no I/O, no clock, no threads.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "core/site.hpp"
#include "model/runtime.hpp"

namespace sitepower::model {

// One reading of the battery, as the controller gives it.
struct Sample {
  double t_s = 0;  // seconds since any fixed origin (monotonic)
  double voltage_v = std::numeric_limits<double>::quiet_NaN();
  double current_a = std::numeric_limits<double>::quiet_NaN();  // + = discharging
  double temp_c = std::numeric_limits<double>::quiet_NaN();
  double soc = std::numeric_limits<double>::quiet_NaN();  // 0..1, if the controller has it
};

// What is wrong with the telemetry, as bits.
enum TelemetryFlag : uint32_t {
  kTelemetryOk = 0,
  kMissing = 1u << 0,      // no voltage or current in the last sample
  kOutOfRange = 1u << 1,   // voltage, current or temperature not physical
  kFrozen = 1u << 2,       // the same values again and again while discharging
  kWrongSign = 1u << 3,    // charging current while on battery: sign convention?
  kInconsistent = 1u << 4  // voltage far from any state the model allows
};
std::string TelemetryFlagsText(uint32_t flags);  // "frozen, out of range" or "ok"

struct EstimatorOptions {
  double voltage_sigma_v_per_cell = 0.01;  // sensor + short-term model error
  double voltage_offset_sigma = 0.06;      // a battery's level against the curve
  double current_sigma_rel = 0.03;         // sensor error of the current
  int frozen_after = 10;                   // identical samples before "frozen"
  double frozen_min_s = 300;               // ... spanning at least this long
};

class DischargeEstimator {
 public:
  // `battery`: nameplate (or learned) state at the outage start; `prior_load`:
  // the configured load, used until the controller measures one.
  DischargeEstimator(core::BatterySpec battery, Load prior_load, Confidence confidence = {},
                     EstimatorOptions options = {});

  // Adds a sample; samples must come in time order (older ones are ignored).
  void Add(const Sample& s);

  // Runtime left from the last sample: from telemetry when it is good, from
  // the model (widened) when it is not.
  RuntimeBand Predict() const;

  uint32_t flags() const { return flags_; }
  double used() const { return x_; }  // fraction spent, 0..1
  double capacity_scale() const { return c_; }
  double capacity_scale_sigma() const { return std::sqrt(p_[1][1]); }
  double voltage_offset() const { return bias_; }  // V per cell
  double load_w() const;                           // measured (smoothed) or prior
  double discharged_ah() const { return ah_; }
  double elapsed_s() const { return samples_ ? last_t_ - first_t_ : 0; }
  int good_samples() const { return good_; }

 private:
  double ScaleNow() const;  // capacity scale x temperature factor
  double HoursAt(double amps) const;

  core::BatterySpec b_;
  Load prior_;
  Confidence conf_;
  EstimatorOptions opt_;
  // State: x = fraction spent, c = capacity scale, bias = voltage offset per
  // cell; p_ = their covariance.
  double x_ = 0, c_ = 1, bias_ = 0;
  double p_[3][3] = {};
  double temp_c_;
  double load_w_ = 0;  // smoothed measured load, 0 until measured
  double ah_ = 0;
  double first_t_ = 0, last_t_ = 0;
  double last_v_ = NAN, last_i_ = NAN;
  double last_amps_ = 0;  // last good current, for the next coulomb-counting step
  int samples_ = 0, good_ = 0, same_ = 0;
  double same_since_ = 0;
  uint32_t flags_ = kTelemetryOk;
};

}  // namespace sitepower::model
