#include "ctl/offline_plan.hpp"

#include <gtest/gtest.h>

namespace sitepower::ctl {
namespace {

const std::string kShared = SITEPOWER_SHARED_DIR "/scenarios/";

scenario::Score PlanAndScore(const scenario::Scenario& s, dispatch::Algorithm alg) {
  auto rt = PredictScenarioRuntimes(s);
  core::TimePoint at = *s.FirstMainsFail(s.sites[0].id);
  dispatch::Options o;
  o.algorithm = alg;
  auto plan = dispatch::MakePlan(OfflinePlanInput(s, at, rt), o);
  auto sp = ToScenarioPlan(s, at, plan);
  EXPECT_TRUE(scenario::ValidatePlan(sp, s).ok());
  std::map<core::SiteId, double> p50;
  for (const auto& [id, r] : rt) p50[id] = r.p50;
  return scenario::ScorePlan(s, sp, p50);
}

// The seed's event: every site up, the last generator running by 11:05.
TEST(OfflinePlanTest, WuzhaiKeepsAllEighteenUp) {
  auto s = scenario::LoadScenarioFile(kShared + "wuzhai-2020-03-08.yaml");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  scenario::Score sc = PlanAndScore(*s, dispatch::Algorithm::kBest);
  EXPECT_EQ(sc.vip_down + sc.key_down + sc.standard_down, 0);
  EXPECT_DOUBLE_EQ(sc.weighted_down_min, 0);
  ASSERT_TRUE(sc.last_generator_running_at.has_value());
  int served = 0;
  for (const auto& [id, o] : sc.sites) served += o.generator_running_at.has_value();
  EXPECT_EQ(served, 18);
  std::printf("wuzhai: last generator running at %s\n",
              core::FormatHhMm(*sc.last_generator_running_at, 480).c_str());
  EXPECT_LE(*sc.last_generator_running_at, *core::ParseHhMmOn("11:05", s->start));
}

TEST(OfflinePlanTest, TyphoonBeatsSeedRule) {
  auto s = scenario::LoadScenarioFile(kShared + "typhoon-small.yaml");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  scenario::Score best = PlanAndScore(*s, dispatch::Algorithm::kBest);
  scenario::Score seed = PlanAndScore(*s, dispatch::Algorithm::kSeedRule);
  std::printf(
      "typhoon-small: planner vip_down %d weighted %.0f; seed rule vip_down %d weighted %.0f\n",
      best.vip_down, best.weighted_down_min, seed.vip_down, seed.weighted_down_min);
  EXPECT_FALSE(seed.BetterThan(best));
}

}  // namespace
}  // namespace sitepower::ctl
