// Time for sitepower. Pure code never reads a clock: `now` is a parameter.
// Only the edge (app, poller, drill) owns a Clock; in a drill it is a
// WarpedClock that runs the scenario's time N times faster than the wall.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/status.hpp"

namespace sitepower::core {

using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;
using Millis = std::chrono::milliseconds;
// Fractional minutes: the unit of FORMAT.md durations.
using Minutes = std::chrono::duration<double, std::ratio<60>>;

inline double ToMinutes(Millis d) { return std::chrono::duration_cast<Minutes>(d).count(); }
inline Millis FromMinutes(double min) { return std::chrono::duration_cast<Millis>(Minutes(min)); }

// A parsed ISO 8601 instant and the UTC offset it was written with.
struct ZonedTime {
  TimePoint at;
  int offset_min = 0;  // e.g. +480 for +08:00
};

// Parses "2020-03-08T08:00:00+08:00", "...Z", fractional seconds allowed.
Result<ZonedTime> ParseIso8601(std::string_view text);
// Formats `t` in the given offset: "2020-03-08T09:05:00+08:00" (seconds precision).
std::string FormatIso8601(TimePoint t, int offset_min);
// "09:05" wall-clock time of `t` in the given offset.
std::string FormatHhMm(TimePoint t, int offset_min);
// Parses "HH:MM" relative to the calendar date of `day` (in its offset).
Result<TimePoint> ParseHhMmOn(std::string_view hhmm, const ZonedTime& day);

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
  // How many scenario seconds pass per wall second (1 for the real clock).
  virtual double Speed() const { return 1.0; }
  // A drill's clock (SharedClock) stands still between Hold() and Release()
  // while the daemon plans; every other clock runs on. Nested holds count.
  virtual void Hold() const {}
  virtual void Release() const {}
};

class SystemClock final : public Clock {
 public:
  TimePoint Now() const override;
};

// Scenario time = epoch + (wall_now - wall_epoch) * speed. Deterministic from
// its three parameters, so a daemon restarted mid-drill with the same
// parameters lands on the same scenario time.
class WarpedClock final : public Clock {
 public:
  WarpedClock(TimePoint epoch, TimePoint wall_epoch, double speed);
  TimePoint Now() const override;
  double Speed() const override { return speed_; }
  // Wall-clock duration that corresponds to a scenario duration.
  std::chrono::nanoseconds WallFor(Millis scenario) const;

 private:
  TimePoint epoch_;
  TimePoint wall_epoch_;
  double speed_;
};

}  // namespace sitepower::core
