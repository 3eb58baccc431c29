#include "model/estimator.hpp"

#include <algorithm>
#include <cmath>

#include "model/curve.hpp"

namespace sitepower::model {
namespace {

bool Finite(double v) { return std::isfinite(v); }

struct Range {
  double v_min, v_max;  // per cell
};
Range CellRange(core::Chemistry c) {
  return c == core::Chemistry::kLfp ? Range{2.0, 3.75} : Range{1.5, 2.45};
}

}  // namespace

std::string TelemetryFlagsText(uint32_t f) {
  if (f == kTelemetryOk) return "ok";
  std::string out;
  auto add = [&out](const char* s) { out += out.empty() ? s : std::string(", ") + s; };
  if (f & kMissing) add("missing");
  if (f & kOutOfRange) add("out of range");
  if (f & kFrozen) add("frozen");
  if (f & kWrongSign) add("charging current on battery (sign?)");
  if (f & kInconsistent) add("voltage inconsistent with the model");
  return out;
}

DischargeEstimator::DischargeEstimator(core::BatterySpec battery, Load prior_load,
                                       Confidence confidence, EstimatorOptions options)
    : b_(std::move(battery)),
      prior_(prior_load),
      conf_(confidence),
      opt_(options),
      temp_c_(b_.temp_c) {
  x_ = 1.0 - std::clamp(b_.soc, 0.0, 1.0);
  c_ = std::clamp(b_.soh, 0.05, 1.5);
  // The curve's spread at the prior load's rate is the capacity scale's
  // prior spread, next to the state of health's. Its median shift is not
  // applied: fitted on four batteries of two series, it moved the band off
  // the drill's battery (BandHoldsOnBatteriesTheCurveNeverSaw: more above
  // P90, no fewer below P10); the filter learns the capacity.
  const CurveError curve = CurveErrorAt(b_, RemainingMinutes(b_, prior_, ScaleNow(), 0) / 60.0);
  double rel = std::hypot(curve.sigma, conf_.soh_sigma);
  p_[0][0] = std::pow(std::max(conf_.soc_sigma, 0.02), 2);
  p_[1][1] = std::pow(c_ * rel, 2);
  p_[2][2] = std::pow(opt_.voltage_offset_sigma, 2);
}

double DischargeEstimator::ScaleNow() const {
  return c_ * TemperatureFactor(b_.chemistry, temp_c_);
}

double DischargeEstimator::HoursAt(double amps) const {
  return HoursAtCurrent(b_, amps / std::max(1, b_.strings), ScaleNow());
}

double DischargeEstimator::load_w() const {
  if (load_w_ > 0) return load_w_;
  if (prior_.power_w > 0) return prior_.power_w;
  return prior_.current_a * MeanCellVoltage(b_.chemistry, 3, b_.end_v_per_cell) * b_.cells;
}

void DischargeEstimator::Add(const Sample& s) {
  if (samples_ > 0 && !(s.t_s > last_t_)) return;
  const int strings = std::max(1, b_.strings);
  const double cref = ReferenceCapacityAh(b_) * strings;
  uint32_t flags = kTelemetryOk;
  const Range range = CellRange(b_.chemistry);
  const double v_cell = s.voltage_v / std::max(1, b_.cells);
  bool v_ok = Finite(s.voltage_v), i_ok = Finite(s.current_a);
  if (!v_ok || !i_ok) flags |= kMissing;
  if (v_ok && (v_cell < range.v_min || v_cell > range.v_max)) {
    flags |= kOutOfRange;
    v_ok = false;
  }
  if (i_ok && std::abs(s.current_a) > 5.0 * cref) {
    flags |= kOutOfRange;
    i_ok = false;
  }
  if (i_ok && s.current_a < -0.01 * cref) {
    flags |= kWrongSign;
    i_ok = false;
  }
  if (Finite(s.temp_c)) {
    if (s.temp_c < -40 || s.temp_c > 85)
      flags |= kOutOfRange;
    else
      temp_c_ = s.temp_c;
  }
  // Frozen: real readings under load always move a little; the same pair
  // again and again for minutes is a controller that stopped updating.
  if (samples_ > 0 && s.voltage_v == last_v_ && s.current_a == last_i_) {
    if (++same_ >= opt_.frozen_after && s.t_s - same_since_ >= opt_.frozen_min_s) flags |= kFrozen;
  } else {
    same_ = 0;
    same_since_ = s.t_s;
  }
  if (flags & kFrozen) v_ok = i_ok = false;

  // Predict: coulomb counting at the rate-dependent capacity.
  if (samples_ > 0) {
    const double dt_h = (s.t_s - last_t_) / 3600.0;
    double amps = last_amps_;
    if (i_ok) amps = last_amps_ > 0 ? 0.5 * (last_amps_ + s.current_a) : s.current_a;
    if (!(amps > 0)) {
      // No usable current: the model's current at the known or prior load.
      double t = HoursAt(std::max(1e-6, load_w() / (2.0 * b_.cells)));
      amps = load_w() / (CellVoltage(b_.chemistry, x_, t, b_.end_v_per_cell) * b_.cells);
    }
    if (amps > 0 && dt_h > 0) {
      double t = HoursAt(amps);
      double dx = dt_h / t;
      // d(dx)/dc, numerically (the runtime is not linear in the scale).
      double c_save = c_;
      c_ = c_save * 1.001;
      double dx2 = dt_h / HoursAt(amps);
      c_ = c_save;
      double f_xc = (dx2 - dx) / (0.001 * c_save);
      x_ = std::min(1.0, x_ + dx);
      // P = F P F' + Q with F = I + f_xc e0 e1'.
      for (int j = 0; j < 3; ++j) p_[0][j] += f_xc * p_[1][j];
      for (int i = 0; i < 3; ++i) p_[i][0] += f_xc * p_[i][1];
      p_[0][0] += std::pow(opt_.current_sigma_rel * dx, 2) + std::pow(0.01, 2) * dt_h;
      p_[1][1] += std::pow(0.002, 2) * dt_h;
      p_[2][2] += std::pow(0.005, 2) * dt_h;
      ah_ += amps * dt_h;
    }
  }
  if (samples_ == 0) {
    first_t_ = s.t_s;
    // The controller's own state of charge at the outage start (coulomb
    // counted on its rated capacity) tells a battery that had not recharged
    // from an earlier outage; later, the rate-dependent capacity makes it a
    // poor measure of what is left, so only the first one is used.
    if (Finite(s.soc) && s.soc >= 0 && s.soc <= 1) {
      x_ = 1.0 - s.soc;
      p_[0][0] = std::pow(0.04, 2);
    }
  }
  last_t_ = s.t_s;
  last_v_ = s.voltage_v;
  last_i_ = s.current_a;
  ++samples_;

  if (v_ok && i_ok && s.current_a > 0) {
    last_amps_ = s.current_a;
    double p = s.voltage_v * s.current_a;
    load_w_ = load_w_ > 0 ? 0.8 * load_w_ + 0.2 * p : p;
    // Update: the voltage against the model's at this state and rate.
    double t = HoursAt(s.current_a);
    auto h = [&](double x, double c) {
      double save = c_;
      c_ = c;
      double tt = HoursAt(s.current_a);
      c_ = save;
      return CellVoltage(b_.chemistry, x, tt, b_.end_v_per_cell);
    };
    double h0 = CellVoltage(b_.chemistry, x_, t, b_.end_v_per_cell) + bias_;
    const double xl = std::max(0.0, x_ - 1e-3), xh = std::min(1.0, x_ + 1e-3);
    const double H[3] = {(h(xh, c_) - h(xl, c_)) / (xh - xl),
                         (h(x_, c_ * 1.001) - (h0 - bias_)) / (0.001 * c_), 1.0};
    double ph[3];
    for (int i = 0; i < 3; ++i) ph[i] = p_[i][0] * H[0] + p_[i][1] * H[1] + p_[i][2] * H[2];
    double s_var =
        H[0] * ph[0] + H[1] * ph[1] + H[2] * ph[2] + std::pow(opt_.voltage_sigma_v_per_cell, 2);
    double innov = v_cell - h0;
    if (good_ >= 3 && std::abs(innov) > 6.0 * std::sqrt(s_var)) {
      flags |= kInconsistent;
    } else {
      double k[3];
      for (int i = 0; i < 3; ++i) k[i] = ph[i] / s_var;
      x_ = std::clamp(x_ + k[0] * innov, 0.0, 1.0);
      c_ = std::clamp(c_ + k[1] * innov, 0.2, 1.6);
      bias_ += k[2] * innov;
      // P = P - K (H P), kept symmetric.
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) p_[i][j] -= k[i] * ph[j];
      for (int i = 0; i < 3; ++i) {
        p_[i][i] = std::max(p_[i][i], 1e-8);
        for (int j = i + 1; j < 3; ++j) p_[i][j] = p_[j][i] = 0.5 * (p_[i][j] + p_[j][i]);
      }
      ++good_;
    }
  }
  flags_ = flags;
}

RuntimeBand DischargeEstimator::Predict() const {
  Load load{load_w(), 0};
  if (load.power_w <= 0) load = prior_;
  const double scale = ScaleNow();
  double p50 = RemainingMinutes(b_, load, scale, x_);
  const bool telemetry = good_ >= 3 && flags_ == kTelemetryOk;
  const double load_sigma = load_w_ > 0 ? 0.03 : conf_.load_sigma;
  double sigma = std::sqrt(p_[1][1] / (c_ * c_) + p_[0][0] / std::pow(std::max(0.05, 1.0 - x_), 2) +
                           std::pow(1.2 * load_sigma, 2));
  std::string basis = telemetry ? "telemetry" : (b_.table.empty() ? "curve" : "table");
  if (flags_ != kTelemetryOk) {
    // Degraded: the model carries on from the last trusted state, wider.
    sigma = std::hypot(sigma, 0.15);
    basis += " (telemetry " + TelemetryFlagsText(flags_) + ")";
  }
  return MakeBand(p50, sigma, basis);
}

}  // namespace sitepower::model
