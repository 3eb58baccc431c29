// Incremental evaluation of the objective: a move changes one or two routes;
// only their stops' running times change, and only those sites and the sites
// they feed change their part of the objective. A move is evaluated in
// O(route length + sites affected), not O(every site). Internal to dispatch.
#pragma once

#include <utility>
#include <vector>

#include "dispatch/plan_model.hpp"

namespace sitepower::dispatch {

class Evaluator {
 public:
  Evaluator(const PlanModel& m, Routes routes);

  double cost() const { return PlanModel::Total(vip_, key_, down_, risk_, travel_, churn_); }
  const Routes& routes() const { return routes_; }
  // The route each site is on (-1: none).
  int CrewOf(int site) const { return crew_of_[site]; }
  long evaluations() const { return evaluations_; }

  // Cost if crew a's route were `ra` (and crew b's `rb`, if b >= 0).
  double Try(int a, const std::vector<int>& ra, int b = -1, const std::vector<int>* rb = nullptr);
  // Makes that change.
  void Commit(int a, const std::vector<int>& ra, int b = -1, const std::vector<int>* rb = nullptr);

 private:
  double Apply(int a, const std::vector<int>& ra, int b, const std::vector<int>* rb, bool commit);

  const PlanModel& m_;
  Routes routes_;
  std::vector<int> crew_of_;
  std::vector<double> running_;
  std::vector<double> route_travel_, route_churn_;
  std::vector<PlanModel::SiteCost> site_cost_;
  int vip_ = 0, key_ = 0;
  double down_ = 0, risk_ = 0, travel_ = 0, churn_ = 0;
  long evaluations_ = 0;
  // Scratch, reused between calls.
  std::vector<int> seen_;
  int stamp_ = 0;
  std::vector<std::pair<int, double>> undo_;
  std::vector<int> affected_;
  std::vector<double> runs_;
  std::vector<std::pair<double, double>> scratch_;
  std::vector<PlanModel::SiteCost> new_cost_;
};

}  // namespace sitepower::dispatch
