// Fitting the generic VRLA curve (curve.hpp) and its error model to published
// discharge tables, and judging both on batteries they were not fitted to.
// Pure: rows in, coefficients and bands out; no I/O, no clock, no threads.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/site.hpp"
#include "model/curve.hpp"
#include "model/runtime.hpp"

namespace sitepower::model {

// One row of a published table: from full at 25 C, at a constant `load`, the
// battery reached spec.end_v_per_cell after `minutes`.
struct TableRow {
  std::string battery;  // model name: a battery's rows are left out together
  bool power = false;   // constant power (W per cell) or constant current (A per string)
  double load = 0;
  double minutes = 0;
  core::BatterySpec spec;  // nameplate, no table
  Load AsLoad() const { return power ? Load{load * spec.cells, 0} : Load{0, load}; }
};

// The curve's coefficients fitted to `rows`: ln F by least squares over the
// constant-current rows, the mean cell voltage over the pairs of a
// constant-power and a constant-current row of one battery at the same end
// voltage and runtime (W per cell / A). The error model is left empty.
// Rows of one battery at one end voltage are enough for neither: callers
// pass several batteries' full tables.
VrlaCurve FitVrlaCurve(std::span<const TableRow> rows);

// One row predicted by the curve fitted to the other batteries' rows.
struct HeldOutResidual {
  double log_ratio = 0;  // ln(actual / predicted minutes)
  double hours = 0;      // predicted runtime from full (the error model's rate)
};

// Leave one battery out: each row predicted by FitVrlaCurve of the other
// batteries' rows; one residual per row, in order. Needs two batteries or more.
std::vector<HeldOutResidual> HeldOutResiduals(std::span<const TableRow> rows);

// CurveErrorModel by maximum likelihood (normal in ln runtime) on the
// residuals of `rows` (same order), for predictions by `curve` (its error
// model is ignored; its end-voltage slope enters the spread).
CurveErrorModel FitErrorModel(VrlaCurve curve, std::span<const TableRow> rows,
                              std::span<const HeldOutResidual> residuals);

// The curve fitted to `rows` with the error model fitted to their held-out
// residuals: GenericVrlaCurve() is this for the published tables.
VrlaCurve FitVrlaModel(std::span<const TableRow> rows);

// The band each row gets from a model that never saw its battery: the curve
// and error model fitted to the other batteries (FitVrlaModel; the error
// model's own residuals then leave out a second battery). With `fixed`, the
// curve fitted to the others with that error model instead (a baseline band).
// One band per row, in order; `confidence` as given (a datasheet row: health
// known, load exact, so all zero).
std::vector<RuntimeBand> HeldOutBands(std::span<const TableRow> rows, const Confidence& confidence,
                                      std::optional<CurveErrorModel> fixed = std::nullopt);

}  // namespace sitepower::model
