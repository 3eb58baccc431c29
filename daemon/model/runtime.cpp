#include "model/runtime.hpp"

#include <algorithm>
#include <cmath>

#include "model/curve.hpp"

namespace sitepower::model {
namespace {

constexpr double kZ90 = 1.2815516;  // standard normal quantile of 0.9
constexpr double kForever = 1e9;
// d ln T / d ln I: runtime falls a little faster than the load rises.
constexpr double kLoadElasticity = 1.2;

}  // namespace

CurveError CurveErrorAt(const core::BatterySpec& b, double hours, const VrlaCurve& curve) {
  if (!b.table.empty()) return {0, 0.04};  // the battery's own datasheet
  if (b.chemistry == core::Chemistry::kLfp) return {0, 0.10};
  const CurveErrorModel& e = curve.error;
  // Distance from the rating point; an infinite or absurd runtime is held
  // at the ends of the published tables (10 min to 20 h) and a little beyond.
  const double h = std::clamp(hours, 0.1, 40.0);
  const double rate = std::log(h / std::clamp(b.rated_hours, 0.1, 40.0));
  // How much the runtime moves with the end voltage here: a battery whose
  // voltage sits apart from the curve's reaches it that much sooner or later.
  constexpr double kDv = 0.005;
  const double per_v = std::log(CapacityFraction(b.chemistry, h, b.end_v_per_cell + kDv, curve) /
                                CapacityFraction(b.chemistry, h, b.end_v_per_cell - kDv, curve)) /
                       (2 * kDv);
  return {e.shift, std::hypot(e.sigma0 + e.per_ln_rate * std::abs(rate), e.per_v_offset * per_v)};
}

RuntimeBand MakeBand(double p50, double sigma, std::string basis) {
  if (!(p50 < kForever)) return {kForever, kForever, kForever, std::move(basis)};
  p50 = std::max(0.0, p50);
  return {p50 * std::exp(-kZ90 * sigma), p50, p50 * std::exp(kZ90 * sigma), std::move(basis)};
}

double RemainingMinutes(const core::BatterySpec& b, const Load& load, double scale, double used,
                        const VrlaCurve& curve) {
  used = std::clamp(used, 0.0, 1.0);
  const int strings = std::max(1, b.strings);
  double hours;
  if (load.power_w > 0)
    hours =
        HoursAtCellPower(b, load.power_w / (strings * std::max(1, b.cells)), scale, used, curve);
  else if (load.current_a > 0)
    hours = (1.0 - used) * HoursAtCurrent(b, load.current_a / strings, scale, curve);
  else
    return kForever;
  return std::min(kForever, hours * 60.0);
}

RuntimeBand PredictRuntime(const core::BatterySpec& b, const Load& load, const Confidence& c,
                           const VrlaCurve& curve) {
  const double scale = b.soh * TemperatureFactor(b.chemistry, b.temp_c);
  const double used = 1.0 - std::clamp(b.soc, 0.0, 1.0);
  const double left = RemainingMinutes(b, load, scale, used, curve);
  // The rate is that of a discharge from full (the curve's error depends on
  // it, not on what is left).
  const CurveError err = CurveErrorAt(b, left / 60.0 / std::max(0.05, 1.0 - used), curve);
  const double p50 = left < kForever ? left * std::exp(err.shift) : left;
  double soc_rel = c.soc_sigma / std::max(0.05, 1.0 - used);
  double sigma = std::sqrt(err.sigma * err.sigma + std::pow(c.soh_sigma, 2) +
                           std::pow(kLoadElasticity * c.load_sigma, 2) + soc_rel * soc_rel +
                           std::pow(c.extra_sigma, 2));
  return MakeBand(p50, sigma, b.table.empty() ? "curve" : "table");
}

double PeukertMinutes(const core::BatterySpec& b, const Load& load, double k) {
  const double nominal_v = (b.chemistry == core::Chemistry::kLfp ? 3.2 : 2.0) * b.cells;
  double amps = load.power_w > 0 ? load.power_w / nominal_v : load.current_a;
  if (!(amps > 0)) return kForever;
  double per_string = amps / std::max(1, b.strings);
  double rated_i = b.capacity_ah / b.rated_hours;
  return 60.0 * b.rated_hours * std::pow(rated_i / per_string, k) * b.soh * b.soc;
}

}  // namespace sitepower::model
