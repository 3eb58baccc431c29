#include "modbus/site_state.hpp"

#include <gtest/gtest.h>

namespace sitepower::modbus {
namespace {

core::TimePoint At(int s) { return core::TimePoint(std::chrono::seconds(s)); }

Reading Good(int s, bool mains, bool gen = false) {
  Reading r;
  r.at = At(s);
  r.poll_ok = true;
  r.mains_ok = {mains ? 1.0 : 0.0, At(s), Quality::kGood};
  r.generator_running = {gen ? 1.0 : 0.0, At(s), Quality::kGood};
  return r;
}

// A poll of a controller without a mains point whose map takes mains from
// the battery current (discharging above 1 A: mains lost).
Reading Current(int s, double amps) {
  Reading r;
  r.at = At(s);
  r.poll_ok = true;
  r.battery_current_a = {amps, At(s), Quality::kGood};
  r.mains_lost_above_discharge_a = 1.0;
  return r;
}

Reading Failed(int s) {
  Reading r;
  r.at = At(s);
  r.error = "timeout";
  return r;
}

TEST(SiteStateTest, MainsFailureNeedsConfirmationAndIsTimedAtTheFirstRead) {
  SiteStateTracker t(3, 3);
  EXPECT_TRUE(t.Feed(Good(0, true)).empty());
  EXPECT_EQ(t.state(), core::PowerState::kOnMains);
  EXPECT_TRUE(t.Feed(Good(10, false)).empty());
  EXPECT_TRUE(t.Feed(Good(20, false)).empty());
  auto ev = t.Feed(Good(30, false));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, SiteEvent::Kind::kMainsFailed);
  EXPECT_EQ(ev[0].at, At(10));
  EXPECT_EQ(t.state(), core::PowerState::kOnBattery);
}

TEST(SiteStateTest, FlappingInputDoesNotFlapTheState) {
  SiteStateTracker t(2, 3);
  t.Feed(Good(0, true));
  for (int i = 1; i < 20; ++i) EXPECT_TRUE(t.Feed(Good(i * 10, i % 2 == 0)).empty());
  EXPECT_EQ(t.state(), core::PowerState::kOnMains);
}

TEST(SiteStateTest, StaleIsExplicitAndOneEventPerTransition) {
  SiteStateTracker t(1, 3);
  t.Feed(Good(0, false));
  EXPECT_EQ(t.state(), core::PowerState::kOnBattery);
  EXPECT_TRUE(t.Feed(Failed(10)).empty());
  EXPECT_TRUE(t.Feed(Failed(20)).empty());
  auto ev = t.Feed(Failed(30));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, SiteEvent::Kind::kStale);
  EXPECT_EQ(t.state(), core::PowerState::kStale);  // never silently "on battery"
  EXPECT_TRUE(t.Feed(Failed(40)).empty());         // no repeat
  ev = t.Feed(Good(50, false));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, SiteEvent::Kind::kFresh);
  EXPECT_EQ(t.state(), core::PowerState::kOnBattery);
}

TEST(SiteStateTest, GeneratorAndMainsFromCurrentWhenNoMainsPoint) {
  SiteStateTracker t(1, 3);
  Reading r;
  r.at = At(0);
  r.poll_ok = true;
  r.battery_current_a = {40, At(0), Quality::kGood};  // discharging
  r.mains_lost_above_discharge_a = 1.0;               // the map's rule
  auto ev = t.Feed(r);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, SiteEvent::Kind::kMainsFailed);
  ev = t.Feed(Good(10, false, true));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, SiteEvent::Kind::kGeneratorStarted);
  EXPECT_EQ(t.state(), core::PowerState::kOnGenerator);
}

TEST(SiteStateTest, WithoutAMainsPointAReportedGeneratorIsNotTakenForMains) {
  SiteStateTracker t(2, 3);
  t.Feed(Current(0, 40));
  auto ev = t.Feed(Current(10, 40));  // confirmed: the battery carries the load
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, SiteEvent::Kind::kMainsFailed);
  t.SetGeneratorReported(true);  // a crew says its generator runs
  for (int s = 20; s < 100; s += 10) EXPECT_TRUE(t.Feed(Current(s, -15)).empty()) << s;
  EXPECT_TRUE(t.mains_failed());
  EXPECT_EQ(t.state(), core::PowerState::kOnGenerator);
  // A generator that stops: the battery discharges again, on battery.
  EXPECT_TRUE(t.Feed(Current(100, 35)).empty());
  EXPECT_EQ(t.state(), core::PowerState::kOnBattery);
  // The crew leaves (task released): charging now means mains.
  t.SetGeneratorReported(false);
  t.Feed(Current(110, -10));
  ev = t.Feed(Current(120, -10));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, SiteEvent::Kind::kMainsRestored);
  EXPECT_EQ(t.state(), core::PowerState::kOnMains);
}

// A standard SunSpec 802 battery: no mains point; mains only by the map's rule.
TEST(SiteStateTest, MainsIsUnknownUnlessAPointOrTheMapsRuleShowsIt) {
  SiteStateTracker t(1, 3);
  Reading r;
  r.at = At(0);
  r.poll_ok = true;
  r.battery_voltage_v = {53.5, At(0), Quality::kGood};
  r.battery_current_a = {-2, At(0), Quality::kGood};  // charging, but no rule says what that means
  EXPECT_TRUE(t.Feed(r).empty());
  EXPECT_EQ(t.state(), core::PowerState::kUnknown);  // not "on mains"
  r.at = At(10);
  r.mains_lost_above_discharge_a = 1.0;  // the rule: not discharging = mains there
  EXPECT_TRUE(t.Feed(r).empty());
  EXPECT_EQ(t.state(), core::PowerState::kOnMains);
  r.at = At(20);
  r.battery_current_a = {};  // the current is absent now: mains unknown again
  EXPECT_TRUE(t.Feed(r).empty());
  EXPECT_EQ(t.state(), core::PowerState::kUnknown);
  r.at = At(30);
  r.battery_current_a = {0.5, At(30), Quality::kGood};  // below the rule's 1 A
  EXPECT_TRUE(t.Feed(r).empty());
  EXPECT_EQ(t.state(), core::PowerState::kOnMains);
  r.at = At(40);
  r.mains_lost_above_discharge_a = 0.2;  // a map with a lower threshold
  auto ev = t.Feed(r);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, SiteEvent::Kind::kMainsFailed);
  EXPECT_EQ(t.state(), core::PowerState::kOnBattery);
}

TEST(SiteStateTest, WithoutAMainsPointAnEmptyBatteryIsNotMainsBack) {
  // The battery reaches its low-voltage disconnect: the load is cut and the
  // current reads zero. That site is off air and still needs a generator;
  // only a charging battery means mains returned.
  SiteStateTracker t(2, 3);
  t.Feed(Current(0, 40));
  ASSERT_EQ(t.Feed(Current(10, 40)).size(), 1u);
  for (int s = 20; s < 200; s += 10) EXPECT_TRUE(t.Feed(Current(s, 0)).empty()) << s;
  EXPECT_TRUE(t.mains_failed());
  EXPECT_EQ(t.state(), core::PowerState::kOnBattery);
  t.Feed(Current(200, -20));
  auto ev = t.Feed(Current(210, -20));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, SiteEvent::Kind::kMainsRestored);
}

TEST(SiteStateTest, AMainsPointIsBelievedWhateverTheCrewSays) {
  SiteStateTracker t(1, 3);
  t.Feed(Good(0, false, false));
  t.SetGeneratorReported(true);
  auto ev = t.Feed(Good(10, true, false));  // the controller's AC input is back
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, SiteEvent::Kind::kMainsRestored);
}

}  // namespace
}  // namespace sitepower::modbus
