// The poll grid and the phases that spread a region over each interval.
#include "modbus/schedule.hpp"

#include <algorithm>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace sitepower::modbus {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

TEST(ScheduleTest, UnitsOfOneGroupShareAPhaseAndGroupsSpreadEvenly) {
  // 8 units behind one endpoint whose pipeline holds 4 polls: 2 groups.
  std::set<double> phases;
  for (size_t i = 0; i < 8; ++i) phases.insert(PollPhase(i, 8, 4, 0, 1));
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_DOUBLE_EQ(*phases.begin(), 0.0);
  EXPECT_DOUBLE_EQ(*phases.rbegin(), 0.5);
  EXPECT_EQ(PollPhase(0, 8, 4, 0, 1), PollPhase(3, 8, 4, 0, 1));
  EXPECT_NE(PollPhase(3, 8, 4, 0, 1), PollPhase(4, 8, 4, 0, 1));
  // A sequential bus (group of 1): every unit on its own, evenly apart.
  for (size_t i = 0; i < 10; ++i) EXPECT_NEAR(PollPhase(i, 10, 1, 0, 1), i / 10.0, 1e-12);
}

TEST(ScheduleTest, ARegionIsSpreadEvenlyNotInClumps) {
  // 100 endpoints x 100 units, one poll at a time each (group 1): 10,000
  // distinct phases, every gap between neighbours the same.
  std::vector<double> p;
  for (size_t e = 0; e < 100; ++e)
    for (size_t i = 0; i < 100; ++i) {
      const double ph = PollPhase(i, 100, 1, e, 100);
      ASSERT_GE(ph, 0.0);
      ASSERT_LT(ph, 1.0);
      p.push_back(ph);
    }
  std::sort(p.begin(), p.end());
  double max_gap = 1.0 - p.back() + p.front();
  for (size_t k = 1; k < p.size(); ++k) max_gap = std::max(max_gap, p[k] - p[k - 1]);
  EXPECT_NEAR(max_gap, 1.0 / 10000, 1e-9);
  // Groups of 33 (a 100-deep pipeline, 3 blocks a poll): 4 groups per
  // endpoint, endpoints interleaved inside each group's slot.
  EXPECT_EQ(PollGroupSize(100, 3), 33u);
  EXPECT_EQ(PollGroupSize(4, 3), 1u);
  EXPECT_EQ(PollGroupSize(1, 0), 1u);
  EXPECT_NEAR(PollPhase(0, 100, 33, 1, 100), 0.25 / 100, 1e-12);
  EXPECT_NEAR(PollPhase(33, 100, 33, 1, 100), 0.25 + 0.25 / 100, 1e-12);
}

TEST(ScheduleTest, NextSlotKeepsTheGridWithoutDrift) {
  const Clock::time_point epoch{};
  const auto at = [&](long ms) { return epoch + milliseconds(ms); };
  const milliseconds iv(10000);
  // Phase 0.25 of a 10 s interval: 2.5 s, 12.5 s, 22.5 s...
  EXPECT_EQ(NextSlot(epoch, iv, 0.25, at(0)), at(2500));
  EXPECT_EQ(NextSlot(epoch, iv, 0.25, at(2500)), at(2500));  // at or after
  // A poll that took 120 ms: the next one is exactly one interval later.
  EXPECT_EQ(NextSlot(epoch, iv, 0.25, at(2620)), at(12500));
  // A slow poll (timeouts) skips the slots it overran, keeps the phase.
  EXPECT_EQ(NextSlot(epoch, iv, 0.25, at(31000)), at(32500));
  // A backoff of 40 s from 12.6 s: the first slot after 52.6 s.
  EXPECT_EQ(NextSlot(epoch, iv, 0.25, at(52600)), at(62500));
  // The fast (on battery) grid keeps the same phase fraction.
  EXPECT_EQ(NextSlot(epoch, milliseconds(5000), 0.25, at(12600)), at(16250));
  // Interval 0: back to back.
  EXPECT_EQ(NextSlot(epoch, milliseconds(0), 0.25, at(777)), at(777));
}

TEST(ScheduleTest, BackoffDoublesWithJitterAndIsCapped) {
  const milliseconds base(10000), cap(60000);
  EXPECT_EQ(Backoff(0, base, cap, 0.5), milliseconds(0));
  EXPECT_EQ(Backoff(1, base, cap, 0.5), milliseconds(10000));  // jitter factor 1.0
  EXPECT_EQ(Backoff(2, base, cap, 0.5), milliseconds(20000));
  EXPECT_EQ(Backoff(3, base, cap, 0.5), milliseconds(40000));
  EXPECT_EQ(Backoff(4, base, cap, 0.5), milliseconds(60000));    // capped
  EXPECT_EQ(Backoff(40, base, cap, 0.5), milliseconds(60000));   // no overflow
  EXPECT_EQ(Backoff(1, base, cap, 0.0), milliseconds(8000));     // -20 %
  EXPECT_EQ(Backoff(1, base, cap, 0.999), milliseconds(11996));  // just under +20 %
  // The 2^6 limit for short intervals: 1 s base, 64 s at most (then the cap).
  EXPECT_EQ(Backoff(7, milliseconds(1000), milliseconds(600000), 0.5), milliseconds(64000));
  EXPECT_EQ(Backoff(12, milliseconds(1000), milliseconds(600000), 0.5), milliseconds(64000));
}

}  // namespace
}  // namespace sitepower::modbus
