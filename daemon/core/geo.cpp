#include "core/geo.hpp"

#include <cmath>
#include <numbers>

namespace sitepower::core {

double HaversineKm(LatLon a, LatLon b) {
  constexpr double kRad = std::numbers::pi / 180.0;
  double dlat = (b.lat - a.lat) * kRad;
  double dlon = (b.lon - a.lon) * kRad;
  double h = std::sin(dlat / 2) * std::sin(dlat / 2) + std::cos(a.lat * kRad) *
                                                           std::cos(b.lat * kRad) *
                                                           std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * kEarthRadiusKm * std::asin(std::min(1.0, std::sqrt(h)));
}

double TravelMinutes(LatLon from, LatLon to, const TravelModel& model, double speed_kmh) {
  double v = speed_kmh > 0 ? speed_kmh : model.speed_kmh;
  return HaversineKm(from, to) * model.road_factor / v * 60.0;
}

}  // namespace sitepower::core
