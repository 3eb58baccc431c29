#include "core/geo.hpp"

#include <gtest/gtest.h>

namespace sitepower::core {
namespace {

TEST(GeoTest, HaversineKnownDistance) {
  // One degree of latitude on a 6371 km sphere is 111.195 km.
  EXPECT_NEAR(HaversineKm({0, 0}, {1, 0}), 111.195, 0.001);
  EXPECT_DOUBLE_EQ(HaversineKm({38.9, 111.8}, {38.9, 111.8}), 0.0);
}

TEST(GeoTest, TravelMinutesFollowsFormatMd) {
  TravelModel m{40, 1.5};
  double km = HaversineKm({38.9156, 111.8495}, {38.9201, 111.8553});
  EXPECT_NEAR(TravelMinutes({38.9156, 111.8495}, {38.9201, 111.8553}, m), km * 1.5 / 40 * 60, 1e-9);
  EXPECT_NEAR(TravelMinutes({0, 0}, {1, 0}, m, 80), 111.195 * 1.5 / 80 * 60, 0.01);
}

}  // namespace
}  // namespace sitepower::core
