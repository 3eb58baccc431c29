// A drill's scenario clock, shared by the drill and its daemon through a
// small file both map. It runs like WarpedClock (scenario time = anchor +
// wall time x speed), and the daemon may hold it while it plans: scenario time
// stands still meanwhile, so a drill at 600x decides what the same day would at
// 1x, where a plan's 200 ms are nothing, however busy the machine is. A hold
// lasts at most `max_hold` of wall time (a daemon killed while holding stops
// no drill for longer). One writer (the holder), any number of readers;
// consistent across processes by a sequence lock.
#pragma once

#include <memory>
#include <string>

#include "core/status.hpp"
#include "core/time.hpp"

namespace sitepower::core {

class SharedClock final : public Clock {
 public:
  // Creates (or replaces) the file with a clock at `epoch` when the wall shows
  // `wall_epoch`, running `speed` times faster than the wall.
  static Result<std::unique_ptr<SharedClock>> Create(const std::string& path, TimePoint epoch,
                                                     TimePoint wall_epoch, double speed,
                                                     Millis max_hold = Millis(2000));
  // Opens a clock another process created; a hold left by a dead holder is
  // released.
  static Result<std::unique_ptr<SharedClock>> Open(const std::string& path);
  ~SharedClock() override;
  SharedClock(const SharedClock&) = delete;
  SharedClock& operator=(const SharedClock&) = delete;

  TimePoint Now() const override;
  double Speed() const override;
  void Hold() const override;
  void Release() const override;

 private:
  struct Shared;
  explicit SharedClock(Shared* shared) : shared_(shared) {}
  Shared* shared_;
  mutable int holds_ = 0;  // this process's nested holds
};

}  // namespace sitepower::core
