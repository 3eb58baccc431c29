#include "model/learning.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sitepower::model {

BatteryHealth PriorHealth(const core::BatterySpec& b, double soh_sigma) {
  return BatteryHealth{b.soh, std::max(1e-3, soh_sigma * b.soh), 0, 0};
}

BatteryHealth LearnFromOutage(const BatteryHealth& prior, const DischargeEstimator& e) {
  BatteryHealth out = prior;
  out.last_depth = e.used();
  if (e.good_samples() < 3 || e.used() < 0.10) return out;
  // The estimator's capacity scale started from the prior soh; its spread
  // after the outage is what this discharge could tell, floored so that one
  // outage never makes the model certain.
  double obs = e.capacity_scale();
  double obs_sigma = std::max(0.03, e.capacity_scale_sigma());
  double w0 = 1.0 / (prior.sigma * prior.sigma), w1 = 1.0 / (obs_sigma * obs_sigma);
  out.soh = std::clamp((w0 * prior.soh + w1 * obs) / (w0 + w1), 0.05, 1.5);
  out.sigma = std::max(0.02, std::sqrt(1.0 / (w0 + w1)));
  ++out.outages;
  return out;
}

std::string HealthToJson(const BatteryHealth& h) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "{\"soh\":%.5f,\"sigma\":%.5f,\"outages\":%d,\"last_depth\":%.4f}",
                h.soh, h.sigma, h.outages, h.last_depth);
  return buf;
}

bool HealthFromJson(const std::string& s, BatteryHealth* out) {
  BatteryHealth h;
  if (std::sscanf(s.c_str(), "{\"soh\":%lf,\"sigma\":%lf,\"outages\":%d,\"last_depth\":%lf}",
                  &h.soh, &h.sigma, &h.outages, &h.last_depth) != 4)
    return false;
  if (!(h.soh > 0 && h.soh <= 1.5 && h.sigma > 0)) return false;
  *out = h;
  return true;
}

}  // namespace sitepower::model
