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

// How bands hold on the rows they are judged on: the share of runtimes below
// P10 and above P90, the interval score of the P10-P90 band in ln runtime
// (Gneiting & Raftery 2007, alpha 0.2: width + 10 x the miss; lower is
// better, so a band cannot win by width alone), widths and P50 errors.
class BandCalibration {
 public:
  void Add(const RuntimeBand& band, double actual_min);
  int rows() const { return rows_; }
  double below() const { return rows_ ? double(below_) / rows_ : 0; }
  double above() const { return rows_ ? double(above_) / rows_ : 0; }
  double inside() const { return 1 - below() - above(); }
  double score() const { return rows_ ? score_ / rows_ : 0; }
  double median_width() const;              // (P90 - P10) / P50
  double p50_error(double quantile) const;  // |P50 - actual| / actual at that quantile

 private:
  int rows_ = 0, below_ = 0, above_ = 0;
  double score_ = 0;
  std::vector<double> width_, p50_error_;
};

}  // namespace sitepower::model
