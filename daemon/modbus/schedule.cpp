#include "modbus/schedule.hpp"

#include <algorithm>
#include <cmath>

namespace sitepower::modbus {

double PollPhase(size_t index, size_t units, size_t group, size_t endpoint, size_t endpoints) {
  group = std::max<size_t>(1, group);
  endpoints = std::max<size_t>(1, endpoints);
  const size_t groups = std::max<size_t>(1, (units + group - 1) / group);
  const double slot = 1.0 / static_cast<double>(groups);
  const double phase =
      static_cast<double>(index / group) * slot +
      slot * static_cast<double>(endpoint % endpoints) / static_cast<double>(endpoints);
  return phase - std::floor(phase);
}

size_t PollGroupSize(size_t in_flight, size_t blocks) {
  return std::max<size_t>(1, in_flight / std::max<size_t>(1, blocks));
}

std::chrono::steady_clock::time_point NextSlot(std::chrono::steady_clock::time_point epoch,
                                               core::Millis interval, double phase,
                                               std::chrono::steady_clock::time_point earliest) {
  if (interval.count() <= 0) return earliest;
  using Ms = std::chrono::duration<double, std::milli>;
  const double iv = static_cast<double>(interval.count());
  const double since = Ms(earliest - epoch).count();
  const auto slot = [&](double k) {
    return epoch +
           std::chrono::duration_cast<std::chrono::steady_clock::duration>(Ms((k + phase) * iv));
  };
  const double k = std::max(0.0, std::ceil(since / iv - phase));
  return slot(k) < earliest ? slot(k + 1) : slot(k);  // the next one if rounding fell short
}

core::Millis Backoff(int failures, core::Millis base, core::Millis cap, double unit_random,
                     int max_doublings) {
  if (failures <= 0) return core::Millis(0);
  const double factor = std::pow(2.0, std::min(failures - 1, max_doublings));
  const double ms = std::min(static_cast<double>(cap.count()),
                             std::max(0.0, static_cast<double>(base.count())) * factor);
  const double jitter = 0.8 + 0.4 * std::clamp(unit_random, 0.0, 1.0);
  return core::Millis(static_cast<long>(ms * jitter));
}

}  // namespace sitepower::modbus
