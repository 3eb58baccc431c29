// The battery's physics as plain functions: how much of its capacity a string
// delivers at a discharge rate and end voltage, its cell voltage along the way,
// temperature derating, and the runtime at a constant current from full.
// Pure: no I/O, no clock, no threads.
//
// VRLA: one generic rate curve, fitted to published constant-current tables
// of four AGM telecom blocks (40-190 Ah, 10 min to 20 h, end voltages
// 1.60-1.85 V/cell; ../shared/data/battery-tables.json; fit.hpp), as the
// fraction of the C10 capacity (to 1.80 V/cell at 25 C) delivered within a
// runtime T:
//   ln F = a + b L + c L^2 + d dv + e dv L + f dv^2 + g dv L^2,
//   L = ln(T / 1 h), dv = end_v_per_cell - 1.80.
// Its effective Peukert exponent runs from ~1.1 at 10-20 h to ~1.6 below
// 30 min, and the end voltage matters most at high rates, as the tables show.
// No per-battery constant: a site's own datasheet table, when given, replaces
// the curve (BatterySpec::table).
// LiFePO4: a flat curve (about 3 % per decade of rate; the end voltage hardly
// matters above the knee), from typical telecom LFP module datasheets.
#pragma once

#include <array>

#include "core/site.hpp"

namespace sitepower::model {

// How far the runtime of a battery the curve was not fitted to strays from
// the curve's: ln(actual / curve) ~ Normal(shift, sigma^2) with
//   sigma^2 = (sigma0 + per_ln_rate x |ln(T / rated hours)|)^2
//           + (per_v_offset x d ln F / d end_v)^2,
// T the runtime from full at the load. The curve is scaled to the nameplate
// at the rating point, so the spread grows with the distance from it; the
// second term is a battery whose voltage sits apart from the curve's, which
// counts where the runtime is steep in the end voltage (short runtimes, high
// end voltages). Fitted by maximum likelihood to leave-one-battery-out
// residuals (fit.hpp), never to the curve's own fitting error.
struct CurveErrorModel {
  double shift = 0;
  double sigma0 = 0;
  double per_ln_rate = 0;
  double per_v_offset = 0;  // V per cell
};

// The generic VRLA curve: coefficients of ln F (above), of the mean cell
// voltage, and its error model.
struct VrlaCurve {
  std::array<double, 7> capacity{};  // a..g of ln F
  std::array<double, 5> voltage{};   // v0 + v1 L + v2 L^2 + v3 dv + v4 dv L
  CurveErrorModel error;

  // The terms those coefficients multiply (1, L, L^2, dv, ...), the runtime
  // held within 10 min to 40 h and the end voltage within 1.55-1.95 V/cell.
  static std::array<double, 7> CapacityTerms(double hours, double end_v_per_cell);
  static std::array<double, 5> VoltageTerms(double hours, double end_v_per_cell);
};

// The curve fitted to ../shared/data/battery-tables.json, compiled in
// (fit_test checks that it is the fit of that file).
const VrlaCurve& GenericVrlaCurve();

// Fraction of the reference capacity (VRLA: C10 to 1.80 V/cell; LFP: the
// rated capacity) delivered when the string reaches `end_v_per_cell` after
// `hours` of constant-current discharge at 25 C.
double CapacityFraction(core::Chemistry c, double hours, double end_v_per_cell,
                        const VrlaCurve& curve = GenericVrlaCurve());

// Mean cell voltage over a constant-current discharge of that length (ties
// constant-current and constant-power tables together: W per cell = A x V).
double MeanCellVoltage(core::Chemistry c, double hours, double end_v_per_cell,
                       const VrlaCurve& curve = GenericVrlaCurve());

// Cell voltage when a fraction `used` (0..1) of what the string can deliver at
// this rate is spent: a slow linear fall, then the knee to the end voltage,
// scaled so that its mean over the discharge is MeanCellVoltage().
double CellVoltage(core::Chemistry c, double used, double hours, double end_v_per_cell,
                   const VrlaCurve& curve = GenericVrlaCurve());

// Capacity available at temp_c relative to 25 C (IEEE 485 cell-size
// correction factors for lead-acid; LFP derates less in the cold).
double TemperatureFactor(core::Chemistry c, double temp_c);

// The end voltage a rating refers to when the nameplate does not say:
// lead-acid C10 to 1.80 V/cell, C20, C8, C3 and C1 to 1.75; LFP 2.50.
double RatedEndVoltage(core::Chemistry c, double rated_hours);

// Reference capacity of one string in Ah (VRLA: C10 to 1.80 V/cell), from its
// rating at rated_hours: a 100 Ah C20 block is a ~93 Ah C10 block.
double ReferenceCapacityAh(const core::BatterySpec& b, const VrlaCurve& curve = GenericVrlaCurve());

// Hours from full to the end voltage at a constant current per string, with
// `scale` multiplying the capacity (state of health x temperature factor x
// anything learned). Uses the battery's own datasheet table when it has one.
// Returns +inf for a current <= 0.
double HoursAtCurrent(const core::BatterySpec& b, double string_amps, double scale,
                      const VrlaCurve& curve = GenericVrlaCurve());

// The same for a constant power per cell (W): current rises as the voltage
// falls, so the discharge is integrated (Miner's rule over the consumed
// fraction, I = P / V(used)) from `used0` to the end. Returns +inf for p <= 0.
double HoursAtCellPower(const core::BatterySpec& b, double cell_w, double scale, double used0 = 0,
                        const VrlaCurve& curve = GenericVrlaCurve());

}  // namespace sitepower::model
