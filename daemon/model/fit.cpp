#include "model/fit.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <tuple>

namespace sitepower::model {
namespace {

// Least squares by the normal equations, Gauss-Jordan with partial pivoting
// (7 unknowns at most; the features are well scaled).
template <size_t N>
std::array<double, N> LeastSquares(const std::vector<std::array<double, N>>& x,
                                   const std::vector<double>& y) {
  std::array<std::array<double, N + 1>, N> a{};
  for (size_t r = 0; r < x.size(); ++r)
    for (size_t i = 0; i < N; ++i) {
      for (size_t j = 0; j < N; ++j) a[i][j] += x[r][i] * x[r][j];
      a[i][N] += x[r][i] * y[r];
    }
  for (size_t i = 0; i < N; ++i) {
    size_t p = i;
    for (size_t r = i + 1; r < N; ++r)
      if (std::abs(a[r][i]) > std::abs(a[p][i])) p = r;
    std::swap(a[i], a[p]);
    if (a[i][i] == 0) continue;  // a feature without data: its coefficient stays 0
    for (size_t r = 0; r < N; ++r) {
      if (r == i) continue;
      double f = a[r][i] / a[i][i];
      for (size_t c = i; c <= N; ++c) a[r][c] -= f * a[i][c];
    }
  }
  std::array<double, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = a[i][i] != 0 ? a[i][N] / a[i][i] : 0;
  return out;
}

std::vector<std::string> Batteries(std::span<const TableRow> rows) {
  std::vector<std::string> names;
  for (const auto& r : rows)
    if (std::find(names.begin(), names.end(), r.battery) == names.end()) names.push_back(r.battery);
  return names;
}

std::vector<TableRow> Without(std::span<const TableRow> rows, const std::string& battery) {
  std::vector<TableRow> out;
  for (const auto& r : rows)
    if (r.battery != battery) out.push_back(r);
  return out;
}

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

// Minus twice the log likelihood of the residuals under `e`.
double Deviance(VrlaCurve curve, std::span<const TableRow> rows,
                std::span<const HeldOutResidual> res, const CurveErrorModel& e) {
  curve.error = e;
  double d = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    double s = std::max(1e-4, CurveErrorAt(rows[i].spec, res[i].hours, curve).sigma);
    double z = (res[i].log_ratio - e.shift) / s;
    d += 2 * std::log(s) + z * z;
  }
  return d;
}

}  // namespace

VrlaCurve FitVrlaCurve(std::span<const TableRow> rows) {
  std::vector<std::array<double, 7>> fx;
  std::vector<double> fy;
  // (battery, end voltage, minutes) -> A per string of the constant-current row.
  std::map<std::tuple<std::string, double, double>, double> amps;
  for (const auto& r : rows) {
    if (r.power) continue;
    const double hours = r.minutes / 60.0;
    fx.push_back(VrlaCurve::CapacityTerms(hours, r.spec.end_v_per_cell));
    // Fraction of the rated (C10) capacity delivered; every published table
    // is rated at C10 to 1.80 V/cell, where the curve is anchored anyway.
    fy.push_back(std::log(r.load * hours / r.spec.capacity_ah));
    amps[{r.battery, r.spec.end_v_per_cell, r.minutes}] = r.load;
  }
  std::vector<std::array<double, 5>> vx;
  std::vector<double> vy;
  for (const auto& r : rows) {
    if (!r.power) continue;
    auto it = amps.find({r.battery, r.spec.end_v_per_cell, r.minutes});
    if (it == amps.end()) continue;
    vx.push_back(VrlaCurve::VoltageTerms(r.minutes / 60.0, r.spec.end_v_per_cell));
    vy.push_back(r.load / it->second);
  }
  VrlaCurve c;
  c.capacity = LeastSquares(fx, fy);
  c.voltage = LeastSquares(vx, vy);
  return c;
}

std::vector<HeldOutResidual> HeldOutResiduals(std::span<const TableRow> rows) {
  std::vector<HeldOutResidual> out(rows.size());
  for (const auto& name : Batteries(rows)) {
    const VrlaCurve curve = FitVrlaCurve(Without(rows, name));
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].battery != name) continue;
      double minutes =
          PredictRuntime(rows[i].spec, rows[i].AsLoad(), Confidence{0, 0, 0, 0}, curve).p50_min;
      out[i] = {std::log(rows[i].minutes / minutes), minutes / 60.0};
    }
  }
  return out;
}

CurveErrorModel FitErrorModel(VrlaCurve curve, std::span<const TableRow> rows,
                              std::span<const HeldOutResidual> residuals) {
  // Coordinate search on the log of each spread (they stay positive), the
  // shift at its weighted mean for the spreads of the moment.
  CurveErrorModel e{0, 0.03, 0.03, 0.03};
  auto best_shift = [&]() {
    curve.error = e;
    double sw = 0, swx = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      double s = std::max(1e-4, CurveErrorAt(rows[i].spec, residuals[i].hours, curve).sigma);
      sw += 1 / (s * s);
      swx += residuals[i].log_ratio / (s * s);
    }
    e.shift = sw > 0 ? swx / sw : 0;
  };
  best_shift();
  double best = Deviance(curve, rows, residuals, e);
  std::array<double*, 3> spreads = {&e.sigma0, &e.per_ln_rate, &e.per_v_offset};
  for (double step = 1.0; step > 1e-4; step *= 0.7) {
    for (double* p : spreads)
      for (double f : {std::exp(step), std::exp(-step)}) {
        CurveErrorModel keep = e;
        *p = std::max(1e-6, *p * f);
        best_shift();
        double d = Deviance(curve, rows, residuals, e);
        if (d < best)
          best = d;
        else
          e = keep;
      }
  }
  return e;
}

VrlaCurve FitVrlaModel(std::span<const TableRow> rows) {
  VrlaCurve c = FitVrlaCurve(rows);
  c.error = FitErrorModel(c, rows, HeldOutResiduals(rows));
  return c;
}

std::vector<RuntimeBand> HeldOutBands(std::span<const TableRow> rows, const Confidence& confidence,
                                      std::optional<CurveErrorModel> fixed) {
  std::vector<RuntimeBand> out(rows.size());
  for (const auto& name : Batteries(rows)) {
    const std::vector<TableRow> others = Without(rows, name);
    VrlaCurve curve = fixed ? FitVrlaCurve(others) : FitVrlaModel(others);
    if (fixed) curve.error = *fixed;
    for (size_t i = 0; i < rows.size(); ++i)
      if (rows[i].battery == name)
        out[i] = PredictRuntime(rows[i].spec, rows[i].AsLoad(), confidence, curve);
  }
  return out;
}

void BandCalibration::Add(const RuntimeBand& b, double actual) {
  ++rows_;
  below_ += actual < b.p10_min;
  above_ += actual > b.p90_min;
  const double lo = std::log(b.p10_min), hi = std::log(b.p90_min), y = std::log(actual);
  score_ += (hi - lo) + 10 * std::max(0.0, lo - y) + 10 * std::max(0.0, y - hi);
  width_.push_back((b.p90_min - b.p10_min) / b.p50_min);
  p50_error_.push_back(std::abs(b.p50_min - actual) / actual);
}

double BandCalibration::median_width() const { return Quantile(width_, 0.5); }

double BandCalibration::p50_error(double quantile) const { return Quantile(p50_error_, quantile); }

}  // namespace sitepower::model
