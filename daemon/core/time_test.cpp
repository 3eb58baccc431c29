#include "core/time.hpp"

#include <gtest/gtest.h>

namespace sitepower::core {
namespace {

TEST(TimeTest, RoundTripsWithOffset) {
  auto t = ParseIso8601("2020-03-08T08:30:00+08:00");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->offset_min, 480);
  EXPECT_EQ(FormatIso8601(t->at, 480), "2020-03-08T08:30:00+08:00");
  EXPECT_EQ(FormatIso8601(t->at, 0), "2020-03-08T00:30:00+00:00");
  EXPECT_EQ(FormatHhMm(t->at, 480), "08:30");
}

TEST(TimeTest, ParsesZuluAndFraction) {
  auto t = ParseIso8601("2020-03-08T00:30:00.250Z");
  ASSERT_TRUE(t.ok());
  auto u = ParseIso8601("2020-03-08T08:30:00+08:00");
  EXPECT_EQ((t->at - u->at).count(), 250);
}

TEST(TimeTest, RejectsGarbage) {
  EXPECT_FALSE(ParseIso8601("2020-03-08").ok());
  EXPECT_FALSE(ParseIso8601("2020-13-08T08:30:00Z").ok());
  EXPECT_FALSE(ParseIso8601("2020-03-08T08:30:00").ok());
  EXPECT_FALSE(ParseIso8601("2020-03-08T08:30:00+08:00x").ok());
}

TEST(TimeTest, HhMmIsOnTheScenarioDate) {
  auto day = ParseIso8601("2020-03-08T08:00:00+08:00");
  auto t = ParseHhMmOn("17:30", *day);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(FormatIso8601(*t, 480), "2020-03-08T17:30:00+08:00");
  EXPECT_FALSE(ParseHhMmOn("7:30", *day).ok());
}

TEST(TimeTest, WarpedClockRunsFaster) {
  auto epoch = ParseIso8601("2020-03-08T08:00:00+08:00")->at;
  SystemClock wall;
  WarpedClock c(epoch, wall.Now() - std::chrono::seconds(10), 60);
  auto now = c.Now();
  EXPECT_GE(now - epoch, std::chrono::minutes(10));
  EXPECT_LT(now - epoch, std::chrono::minutes(11));
  EXPECT_EQ(c.WallFor(std::chrono::minutes(1)), std::chrono::seconds(1));
}

}  // namespace
}  // namespace sitepower::core
