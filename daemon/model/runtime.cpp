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

double CurveSigma(const core::BatterySpec& b) {
  if (!b.table.empty()) return 0.04;  // the battery's own datasheet
  return b.chemistry == core::Chemistry::kLfp ? 0.10 : 0.075;
}

RuntimeBand MakeBand(double p50, double sigma, std::string basis) {
  if (!(p50 < kForever)) return {kForever, kForever, kForever, std::move(basis)};
  p50 = std::max(0.0, p50);
  return {p50 * std::exp(-kZ90 * sigma), p50, p50 * std::exp(kZ90 * sigma), std::move(basis)};
}

double RemainingMinutes(const core::BatterySpec& b, const Load& load, double scale, double used) {
  used = std::clamp(used, 0.0, 1.0);
  const int strings = std::max(1, b.strings);
  double hours;
  if (load.power_w > 0)
    hours = HoursAtCellPower(b, load.power_w / (strings * std::max(1, b.cells)), scale, used);
  else if (load.current_a > 0)
    hours = (1.0 - used) * HoursAtCurrent(b, load.current_a / strings, scale);
  else
    return kForever;
  return std::min(kForever, hours * 60.0);
}

RuntimeBand PredictRuntime(const core::BatterySpec& b, const Load& load, const Confidence& c) {
  const double scale = b.soh * TemperatureFactor(b.chemistry, b.temp_c);
  const double used = 1.0 - std::clamp(b.soc, 0.0, 1.0);
  double p50 = RemainingMinutes(b, load, scale, used);
  double soc_rel = c.soc_sigma / std::max(0.05, 1.0 - used);
  double sigma = std::sqrt(std::pow(CurveSigma(b), 2) + std::pow(c.soh_sigma, 2) +
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
