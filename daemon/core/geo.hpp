// Geography and the travel model of FORMAT.md, shared by planner, drill and scoring.
#pragma once

namespace sitepower::core {

struct LatLon {
  double lat = 0;  // degrees, WGS84
  double lon = 0;
};

inline constexpr double kEarthRadiusKm = 6371.0;

// Great-circle distance, haversine formula, Earth radius 6371.0 km.
double HaversineKm(LatLon a, LatLon b);

struct TravelModel {
  double speed_kmh = 40;     // default crew speed
  double road_factor = 1.5;  // road distance / great-circle distance
};

// Travel minutes between two points: haversine x road_factor / speed.
// speed_kmh <= 0 means "use model.speed_kmh".
double TravelMinutes(LatLon from, LatLon to, const TravelModel& model, double speed_kmh = 0);

}  // namespace sitepower::core
