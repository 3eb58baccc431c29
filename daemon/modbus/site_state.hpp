// Turns a site's readings into debounced state transitions. Pure: feed it
// readings in time order; it returns the events each one causes. Mains
// failure and return need `mains_fail_confirm` consecutive agreeing reads, so
// a flapping input does not flap the plan; stale is explicit, never silent.
#pragma once

#include <string>
#include <vector>

#include "core/site.hpp"
#include "modbus/register_map.hpp"

namespace sitepower::modbus {

struct SiteEvent {
  enum class Kind {
    kMainsFailed,
    kMainsRestored,
    kStale,
    kFresh,
    kGeneratorStarted,
    kGeneratorStopped,
    kLvdOpened,
    kLvdClosed
  };
  Kind kind;
  core::TimePoint at;
  std::string detail;
};

class SiteStateTracker {
 public:
  SiteStateTracker(int mains_fail_confirm, int stale_after_missed);
  // Events caused by this reading, in order. The mains-failure time is that of
  // the first of the confirming reads.
  std::vector<SiteEvent> Feed(const Reading& r);
  // state(): kUnknown until a reading shows mains, and again while the last
  // good reading did not show it (mains is never assumed healthy).
  // A generator the controller cannot show: a crew reported it running (on
  // until the task is released). A controller without a mains point shows
  // mains only through the battery current (the map's mains rule); while a generator is there, a
  // battery that stops discharging is the generator's doing, not mains.
  void SetGeneratorReported(bool on) { generator_reported_ = on; }
  // A restart: the outage the store remembers is still on until a reading
  // says otherwise (without a mains point, a charging battery is then a
  // generator, not mains back).
  void RestoreMainsFailed() { mains_failed_ = true; }
  core::PowerState state() const;
  bool mains_failed() const { return mains_failed_; }

 private:
  int confirm_, stale_after_;
  int missed_ = 0;
  bool stale_ = false;
  bool have_data_ = false;
  bool mains_failed_ = false;
  int disagree_ = 0;  // consecutive reads contradicting mains_failed_
  core::TimePoint first_disagree_{};
  bool generator_ = false, lvd_open_ = false;
  bool generator_reported_ = false;
  bool mains_from_current_ = false;  // the last mains reading came from the current
  bool mains_known_ = false;         // the last good reading showed mains (or kept it)
  bool discharging_ = false;
};

}  // namespace sitepower::modbus
