#include "core/shared_clock.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

namespace sitepower::core {
namespace {

std::string Path() {
  return (std::filesystem::temp_directory_path() /
          ("sp-clock-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name()))
      .string();
}

TimePoint WallNow() {
  return std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
}

// Two handles on one file stand for the drill (creator) and the daemon.
TEST(SharedClockTest, RunsWarpedAndStandsStillWhileHeld) {
  const TimePoint epoch(Millis(1583625600000));
  auto drill = SharedClock::Create(Path(), epoch, WallNow(), 600);
  ASSERT_TRUE(drill.ok()) << drill.status().ToString();
  auto daemon = SharedClock::Open(Path());
  ASSERT_TRUE(daemon.ok()) << daemon.status().ToString();
  EXPECT_EQ((*daemon)->Speed(), 600);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const TimePoint a = (*drill)->Now();
  EXPECT_GE(a - epoch, Millis(50 * 600));  // 100 ms wall: about a minute
  (*daemon)->Hold();
  const TimePoint held = (*drill)->Now();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ((*drill)->Now(), held);  // a plan's 200 ms take no scenario time
  EXPECT_EQ((*daemon)->Now(), held);
  const TimePoint released_at = WallNow();
  (*daemon)->Release();
  const TimePoint after = (*drill)->Now();
  const Millis since = std::chrono::duration_cast<Millis>(WallNow() - released_at);
  EXPECT_GE(after, held);
  EXPECT_LE(after - held, (since + Millis(2)) * 600);  // resumes where it stood
  std::remove(Path().c_str());
}

TEST(SharedClockTest, AHoldLastsAtMostMaxHoldAndADeadHoldersIsReleased) {
  const TimePoint epoch(Millis(1583625600000));
  auto drill = SharedClock::Create(Path(), epoch, WallNow(), 100, Millis(100));
  ASSERT_TRUE(drill.ok());
  {
    auto daemon = SharedClock::Open(Path());
    ASSERT_TRUE(daemon.ok());
    const TimePoint wall0 = WallNow();
    (*daemon)->Hold();
    const TimePoint held = (*drill)->Now();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // Frozen for 100 ms of wall time, then running again.
    const Millis ran = std::chrono::duration_cast<Millis>((*drill)->Now() - held);
    const Millis wall = std::chrono::duration_cast<Millis>(WallNow() - wall0);
    EXPECT_GE(ran, (wall - Millis(100) - Millis(5)) * 100);
    EXPECT_LE(ran, (wall - Millis(100) + Millis(5)) * 100);
    // The daemon "dies" here with its hold: a restarted one releases it.
  }
  auto restarted = SharedClock::Open(Path());
  ASSERT_TRUE(restarted.ok());
  const TimePoint t1 = (*drill)->Now();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_GT((*drill)->Now(), t1);
  EXPECT_FALSE(SharedClock::Open(Path() + ".missing").ok());
  std::remove(Path().c_str());
}

}  // namespace
}  // namespace sitepower::core
