#include "sim/battery_sim.hpp"

#include <algorithm>
#include <array>
#include <cmath>

namespace sitepower::sim {
namespace {

// {hours to 1.80 V/cell, fraction of the C10 capacity delivered} for AGM
// telecom blocks; typical of published tables (e.g. 190 Ah front-terminal
// blocks: 0.55 at 30 min, 0.68 at 1 h, 0.86 at 3 h, 1.0 at 10 h, 1.05 at 20 h).
constexpr std::array<std::pair<double, double>, 10> kVrla = {{{0.167, 0.33},
                                                              {0.5, 0.55},
                                                              {1, 0.675},
                                                              {2, 0.80},
                                                              {3, 0.86},
                                                              {5, 0.895},
                                                              {8, 0.965},
                                                              {10, 1.0},
                                                              {20, 1.05},
                                                              {100, 1.10}}};
// LiFePO4 delivers almost all of its capacity at any telecom rate.
constexpr std::array<std::pair<double, double>, 5> kLfp = {
    {{0.25, 0.90}, {0.5, 0.95}, {1, 0.98}, {5, 1.0}, {100, 1.02}}};

// Fraction delivered when drawing `amps` from a string rated `c10_ah` at C10.
template <size_t N>
double FractionAt(const std::array<std::pair<double, double>, N>& t, double rated_ah,
                  double rated_hours, double amps) {
  // Each row gives a current I = fraction * rated_ah / hours; interpolate on log I.
  std::array<std::pair<double, double>, N> by_current{};
  for (size_t i = 0; i < N; ++i)
    by_current[N - 1 - i] = {std::log(t[i].second * rated_ah / t[i].first), t[i].second};
  // Normalise to the battery's own rating: its rated_hours row is 1.0 of rated_ah.
  double x = std::log(std::max(amps, 1e-6));
  if (x <= by_current.front().first) return by_current.front().second;
  if (x >= by_current.back().first) return by_current.back().second;
  for (size_t i = 1; i < N; ++i) {
    if (x <= by_current[i].first) {
      double f = (x - by_current[i - 1].first) / (by_current[i].first - by_current[i - 1].first);
      return by_current[i - 1].second + f * (by_current[i].second - by_current[i - 1].second);
    }
  }
  (void)rated_hours;
  return by_current.back().second;
}

}  // namespace

BatterySim::BatterySim(const core::BatterySpec& spec, double load_w)
    : spec_(spec), load_w_(load_w) {
  // A battery that starts partly discharged has already spent that share.
  used_ = std::clamp(1.0 - spec.soc, 0.0, 1.0);
  ah_drawn_ = (1.0 - spec.soc) * spec.capacity_ah * spec.strings * spec.soh;
  current_a_ = load_w_ / std::max(1.0, voltage_v());
}

BatterySim BatterySim::Resume(const core::BatterySpec& spec, double load_w, double drawn_ah,
                              bool empty) {
  BatterySim b(spec, load_w);
  const double usable = spec.capacity_ah * spec.strings * spec.soh;
  b.ah_drawn_ = std::clamp(drawn_ah, 0.0, usable);
  if (empty) {
    b.used_ = 1.0;
    b.current_a_ = 0;
    return b;
  }
  // used = drawn / capacity at the load's current; the current depends on the
  // voltage, which depends on used: a few fixed-point steps settle it.
  const int strings = std::max(1, spec.strings);
  double amps = b.current_a_;
  for (int k = 0; k < 6; ++k) {
    b.used_ = std::min(1.0, b.ah_drawn_ / strings / b.CapacityAtCurrentAh(amps / strings));
    amps = load_w / std::max(1.0, b.CellVoltage(b.used_, amps / strings) * spec.cells);
  }
  b.current_a_ = amps;
  return b;
}

double BatterySim::CapacityAtCurrentAh(double amps) const {
  const bool lfp = spec_.chemistry == core::Chemistry::kLfp;
  // Convert the rating to C10 for the table (C20 ratings deliver ~5 % less at C10).
  double c10 = spec_.capacity_ah;
  if (!lfp) {
    // fraction of C10 delivered at the rating's own hour rate, from the table
    double f_rated = 1.0;
    for (size_t i = 1; i < kVrla.size(); ++i)
      if (spec_.rated_hours <= kVrla[i].first) {
        double a = std::log(kVrla[i - 1].first), b = std::log(kVrla[i].first);
        double w = (std::log(spec_.rated_hours) - a) / (b - a);
        f_rated = kVrla[i - 1].second + w * (kVrla[i].second - kVrla[i - 1].second);
        break;
      }
    c10 = spec_.capacity_ah / f_rated;
  }
  double frac = lfp ? FractionAt(kLfp, c10, 1, amps) : FractionAt(kVrla, c10, 10, amps);
  // A lower end voltage releases more, mostly at high rates.
  double hours = frac * c10 / std::max(amps, 1e-6);
  double end_gain =
      (1.80 - spec_.end_v_per_cell) * (lfp ? 0.0 : (0.6 + 0.8 / std::max(hours, 0.25)));
  // Cold batteries deliver less (about 0.8 %/C below 25 C for lead-acid).
  double temp = spec_.temp_c >= 25 ? 1.0 : 1.0 - (lfp ? 0.005 : 0.008) * (25 - spec_.temp_c);
  return c10 * frac * (1.0 + end_gain) * std::max(0.2, temp) * spec_.soh;
}

double BatterySim::CellVoltage(double used, double string_amps) const {
  const bool lfp = spec_.chemistry == core::Chemistry::kLfp;
  double c10 = spec_.capacity_ah;
  double rate = string_amps / std::max(1.0, c10 / 10.0);  // multiples of the C10 current
  // Starts at the plateau minus an IR drop, falls slowly, then a knee to end voltage.
  double start = lfp ? 3.30 - 0.03 * rate : 2.10 - 0.045 * rate;
  double end = spec_.end_v_per_cell;
  double u = std::clamp(used, 0.0, 1.0);
  double shape =
      lfp ? 1.0 - std::pow(u, 8.0) * 0.9 - 0.1 * u : 1.0 - 0.55 * u - 0.45 * std::pow(u, 6.0);
  return end + (start - end) * std::max(0.0, shape);
}

double BatterySim::voltage_v() const {
  double amps = current_a_ / std::max(1, spec_.strings);
  return CellVoltage(used_, amps) * spec_.cells;
}

double BatterySim::soc_pct() const {
  double usable = spec_.capacity_ah * spec_.strings * spec_.soh;
  return std::clamp(100.0 * (1.0 - ah_drawn_ / usable), 0.0, 100.0);
}

void BatterySim::Step(double dt_s, bool carried) {
  if (carried) {
    // Recharge at about 0.1 C10 until full.
    double amps =
        std::min(0.1 * spec_.capacity_ah * spec_.strings, ah_drawn_ * 3600 / std::max(dt_s, 1e-9));
    current_a_ = -amps;
    ah_drawn_ = std::max(0.0, ah_drawn_ - amps * dt_s / 3600);
    used_ = std::max(0.0, used_ - amps / std::max(1, spec_.strings) * dt_s / 3600 /
                                      CapacityAtCurrentAh(0.1 * spec_.capacity_ah));
    return;
  }
  if (empty()) {
    current_a_ = 0;  // load disconnected
    return;
  }
  // Constant power: solve I = P / V(I) by a few fixed-point steps.
  double amps = current_a_ > 0 ? current_a_ : load_w_ / (2.0 * spec_.cells);
  for (int k = 0; k < 4; ++k)
    amps = load_w_ /
           std::max(1.0, CellVoltage(used_, amps / std::max(1, spec_.strings)) * spec_.cells);
  current_a_ = amps;
  double per_string = amps / std::max(1, spec_.strings);
  used_ += per_string * dt_s / 3600.0 / CapacityAtCurrentAh(per_string);
  ah_drawn_ += amps * dt_s / 3600.0;
  if (used_ >= 1.0) used_ = 1.0;
}

double BatterySim::TrueRuntimeMin(const core::BatterySpec& spec, double load_w) {
  return BatterySim(spec, load_w).MinutesToEmpty();
}

double BatterySim::MinutesToEmpty() const {
  BatterySim b = *this;
  double t = 0;
  while (!b.empty() && t < 72 * 3600) {
    b.Step(5, false);
    t += 5;
  }
  return t / 60.0;
}

}  // namespace sitepower::sim
