#include "dispatch/reserve.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace sitepower::dispatch {
namespace {

core::TimePoint T0() { return core::TimePoint(std::chrono::hours(24 * 18000)); }

SiteNeed Standard(const std::string& id, double lon, double deadline_min) {
  SiteNeed s;
  s.id = id;
  s.location = {0, lon};
  s.hookup_min = 10;
  s.mains_fail_at = T0();
  s.deadline_p10 = s.deadline_p50 = s.deadline_p90 = T0() + core::FromMinutes(deadline_min);
  return s;
}

CrewState Crew(const std::string& id, double lon, int gens) {
  CrewState c;
  c.id = id;
  c.location = {0, lon};
  c.generators_left = gens;
  c.available_from = T0();
  return c;
}

PlanInput Scarce() {
  PlanInput in;
  in.now = T0();
  in.travel = {40, 1.5};
  in.horizon_end = T0() + std::chrono::hours(12);
  for (int i = 0; i < 6; ++i) in.sites.push_back(Standard("S" + std::to_string(i), 0.01 * i, 90));
  in.crews.push_back(Crew("A", 0.0, 3));
  in.crews.push_back(Crew("B", 0.05, 3));
  return in;
}

const std::vector<SiteOnMains> kOnMains = {{"V", {0, -0.02}, core::Tier::kVip},
                                           {"K", {0, 0.06}, core::Tier::kKey},
                                           {"X", {0, 0.03}, core::Tier::kStandard}};

TEST(ReserveTest, NoneWhenGeneratorsSuffice) {
  PlanInput in = Scarce();
  in.crews[0].generators_left = 10;  // 13 generators for 6 sites + what may come
  EXPECT_EQ(ReserveGenerators(in, kOnMains, 0.5), 0);
  for (const auto& c : in.crews) EXPECT_TRUE(c.reserved_for.empty());
}

TEST(ReserveTest, NoneWhenNothingElseIsFailing) {
  PlanInput in = Scarce();
  EXPECT_EQ(ReserveGenerators(in, kOnMains, 0.0), 0);
}

TEST(ReserveTest, ScarceHoldsForTheExpectedVipAndKeyFailuresNearestCrewFirst) {
  PlanInput in = Scarce();
  // 6 generators, 6 sites now, 2 VIP/key sites on mains at 50 %: 1 held, for the VIP.
  EXPECT_EQ(ReserveGenerators(in, kOnMains, 0.5), 1);
  EXPECT_EQ(in.crews[0].reserved_for, std::vector<core::SiteId>{"V"});
  EXPECT_TRUE(in.crews[1].reserved_for.empty());
  // Everything failing elsewhere: both held (a standard site on mains is not).
  EXPECT_EQ(ReserveGenerators(in, kOnMains, 1.0), 2);
  EXPECT_EQ(in.crews[1].reserved_for, std::vector<core::SiteId>{"K"});

  // The plan serves 5 standard sites, not 6; the reason says why.
  ReserveGenerators(in, kOnMains, 0.5);
  Plan p = MakePlan(in, {});
  EXPECT_EQ(p.routes[0].stops.size() + p.routes[1].stops.size(), 5u);
  EXPECT_EQ(p.unserved.size(), 1u);
  ASSERT_FALSE(p.routes[0].stops.empty());
  EXPECT_NE(p.routes[0].stops[0].reason.find("A holds 1 generator(s) for VIP/key sites still on "
                                             "mains (V)"),
            std::string::npos)
      << p.routes[0].stops[0].reason;

  // The VIP loses mains: it takes the held generator (a reserve never stops a VIP or key site).
  SiteNeed v = Standard("V", -0.02, 60);
  v.tier = core::Tier::kVip;
  in.sites.push_back(v);
  ReserveGenerators(in, {kOnMains[1], kOnMains[2]}, 0.5);
  p = MakePlan(in, {});
  EXPECT_EQ(p.objective.vip_down, 0);
  bool served = false;
  for (const auto& r : p.routes)
    for (const auto& s : r.stops) served |= s.site == "V";
  EXPECT_TRUE(served);
}

}  // namespace
}  // namespace sitepower::dispatch
