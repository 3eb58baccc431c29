// Learning per site: after each outage, the capacity the estimator observed
// is fused into the site's state of health, so the next outage starts from a
// better model. Pure; the daemon persists BatteryHealth in its store.
#pragma once

#include <string>

#include "model/estimator.hpp"

namespace sitepower::model {

struct BatteryHealth {
  double soh = 1.0;       // capacity relative to the nameplate (0..1.5)
  double sigma = 0.05;    // its standard deviation (absolute)
  int outages = 0;        // outages learned from
  double last_depth = 0;  // fraction of the deliverable charge spent in the last one
};

// The nameplate's health as a prior: the configured soh with its survey
// uncertainty.
BatteryHealth PriorHealth(const core::BatterySpec& battery, double soh_sigma = 0.05);

// Inverse-variance fusion of the prior with what this outage showed. An
// outage too shallow to tell (under 10 % spent, or under 3 good samples)
// changes nothing but the count of depths seen.
BatteryHealth LearnFromOutage(const BatteryHealth& prior, const DischargeEstimator& outage);

std::string HealthToJson(const BatteryHealth& h);
bool HealthFromJson(const std::string& json, BatteryHealth* out);

}  // namespace sitepower::model
