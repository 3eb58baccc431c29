#include "dispatch/evaluator.hpp"

#include <algorithm>

namespace sitepower::dispatch {
namespace {
constexpr double kNever = 1e18;
}

Evaluator::Evaluator(const PlanModel& m, Routes routes)
    : m_(m),
      routes_(std::move(routes)),
      crew_of_(m.site_count(), -1),
      running_(m.site_count(), kNever),
      route_travel_(routes_.size(), 0),
      route_churn_(routes_.size(), 0),
      site_cost_(m.site_count()),
      seen_(m.site_count(), 0) {
  for (size_t c = 0; c < routes_.size(); ++c) {
    route_travel_[c] = m_.RouteRuns(static_cast<int>(c), routes_[c], &runs_);
    for (size_t k = 0; k < routes_[c].size(); ++k) {
      int s = routes_[c][k];
      crew_of_[s] = static_cast<int>(c);
      running_[s] = runs_[k];
      route_churn_[c] += m_.ChurnOf(static_cast<int>(c), s);
    }
    travel_ += route_travel_[c];
    churn_ += route_churn_[c];
  }
  for (int i = 0; i < m_.site_count(); ++i) {
    site_cost_[i] = m_.CostOf(i, running_, scratch_);
    vip_ += site_cost_[i].vip_down + site_cost_[i].vip_late;
    key_ += site_cost_[i].key_down + site_cost_[i].key_late;
    down_ += site_cost_[i].down;
    risk_ += site_cost_[i].risk;
  }
}

double Evaluator::Try(int a, const std::vector<int>& ra, int b, const std::vector<int>* rb) {
  return Apply(a, ra, b, rb, false);
}

void Evaluator::Commit(int a, const std::vector<int>& ra, int b, const std::vector<int>* rb) {
  Apply(a, ra, b, rb, true);
}

double Evaluator::Apply(int a, const std::vector<int>& ra, int b, const std::vector<int>* rb,
                        bool commit) {
  ++evaluations_;
  if (++stamp_ == 0) {
    std::fill(seen_.begin(), seen_.end(), 0);
    stamp_ = 1;
  }
  undo_.clear();
  affected_.clear();
  auto set_running = [this](int s, double v) {
    if (running_[s] == v) return;
    undo_.push_back({s, running_[s]});
    running_[s] = v;
    for (int d : m_.Downstream(s))
      if (seen_[d] != stamp_) {
        seen_[d] = stamp_;
        affected_.push_back(d);
      }
  };
  double d_travel = 0, d_churn = 0;
  auto route = [&](int c, const std::vector<int>& r) {
    double travel = m_.RouteRuns(c, r, &runs_);
    double churn = 0;
    for (size_t k = 0; k < r.size(); ++k) {
      set_running(r[k], runs_[k]);
      churn += m_.ChurnOf(c, r[k]);
    }
    d_travel += travel - route_travel_[c];
    d_churn += churn - route_churn_[c];
    if (commit) {
      route_travel_[c] = travel;
      route_churn_[c] = churn;
    }
  };
  // Both routes' old stops first (a site may move from one to the other).
  for (int s : routes_[a]) set_running(s, kNever);
  if (b >= 0 && rb)
    for (int s : routes_[b]) set_running(s, kNever);
  route(a, ra);
  if (b >= 0 && rb) route(b, *rb);
  int d_vip = 0, d_key = 0;
  double d_down = 0, d_risk = 0;
  new_cost_.resize(affected_.size());
  for (size_t k = 0; k < affected_.size(); ++k) {
    int s = affected_[k];
    new_cost_[k] = m_.CostOf(s, running_, scratch_);
    d_vip += static_cast<int>(new_cost_[k].vip_down) + new_cost_[k].vip_late -
             static_cast<int>(site_cost_[s].vip_down) - site_cost_[s].vip_late;
    d_key += static_cast<int>(new_cost_[k].key_down) + new_cost_[k].key_late -
             static_cast<int>(site_cost_[s].key_down) - site_cost_[s].key_late;
    d_down += new_cost_[k].down - site_cost_[s].down;
    d_risk += new_cost_[k].risk - site_cost_[s].risk;
  }
  double total = PlanModel::Total(vip_ + d_vip, key_ + d_key, down_ + d_down, risk_ + d_risk,
                                  travel_ + d_travel, churn_ + d_churn);
  if (commit) {
    for (size_t k = 0; k < affected_.size(); ++k) site_cost_[affected_[k]] = new_cost_[k];
    vip_ += d_vip;
    key_ += d_key;
    down_ += d_down;
    risk_ += d_risk;
    travel_ += d_travel;
    churn_ += d_churn;
    for (int s : routes_[a]) crew_of_[s] = -1;
    if (b >= 0 && rb)
      for (int s : routes_[b]) crew_of_[s] = -1;
    routes_[a] = ra;
    if (b >= 0 && rb) routes_[b] = *rb;
    for (int s : routes_[a]) crew_of_[s] = a;
    if (b >= 0 && rb)
      for (int s : routes_[b]) crew_of_[s] = b;
  } else {
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) running_[it->first] = it->second;
  }
  return total;
}

}  // namespace sitepower::dispatch
