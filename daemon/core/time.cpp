#include "core/time.hpp"

#include <cstdio>
#include <cstdlib>

namespace sitepower::core {
namespace {

bool ReadInt(std::string_view s, size_t pos, size_t len, int& out) {
  if (pos + len > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

}  // namespace

Result<ZonedTime> ParseIso8601(std::string_view s) {
  using namespace std::chrono;
  auto bad = [&s](const char* why) {
    return Status::InvalidArgument("bad ISO 8601 time '" + std::string(s) + "': " + why);
  };
  int y, mo, d, h, mi, sec = 0;
  if (!ReadInt(s, 0, 4, y) || s.size() < 16 || s[4] != '-' || !ReadInt(s, 5, 2, mo) ||
      s[7] != '-' || !ReadInt(s, 8, 2, d) || (s[10] != 'T' && s[10] != ' ') ||
      !ReadInt(s, 11, 2, h) || s[13] != ':' || !ReadInt(s, 14, 2, mi)) {
    return bad("expected YYYY-MM-DDTHH:MM[:SS][.fff](Z|+HH:MM)");
  }
  size_t pos = 16;
  int millis = 0;
  if (pos < s.size() && s[pos] == ':') {
    if (!ReadInt(s, pos + 1, 2, sec)) return bad("bad seconds");
    pos += 3;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      int scale = 100;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        millis += (s[pos] - '0') * scale;
        scale /= 10;
        ++pos;
      }
    }
  }
  int offset = 0;
  if (pos >= s.size()) return bad("missing UTC offset (Z or +HH:MM)");
  if (s[pos] == 'Z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!ReadInt(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !ReadInt(s, pos + 4, 2, om)) {
      return bad("bad UTC offset");
    }
    offset = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return bad("unexpected character after time");
  }
  if (pos != s.size()) return bad("trailing characters");
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return bad("field out of range");
  TimePoint t = time_point_cast<milliseconds>(sys_days(ymd)) + hours(h) + minutes(mi) +
                seconds(sec) + milliseconds(millis) - minutes(offset);
  return ZonedTime{t, offset};
}

std::string FormatIso8601(TimePoint t, int offset_min) {
  using namespace std::chrono;
  auto local = t + minutes(offset_min);
  auto dp = floor<days>(local);
  year_month_day ymd{dp};
  hh_mm_ss hms{floor<seconds>(local - dp)};
  char buf[40];
  int off = offset_min < 0 ? -offset_min : offset_min;
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d%c%02d:%02d",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                offset_min < 0 ? '-' : '+', off / 60, off % 60);
  return buf;
}

std::string FormatHhMm(TimePoint t, int offset_min) {
  using namespace std::chrono;
  auto local = t + minutes(offset_min);
  auto dp = floor<days>(local);
  hh_mm_ss hms{floor<seconds>(local - dp)};
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02d:%02d", static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()));
  return buf;
}

Result<TimePoint> ParseHhMmOn(std::string_view s, const ZonedTime& day) {
  using namespace std::chrono;
  int h, m;
  if (s.size() != 5 || !ReadInt(s, 0, 2, h) || s[2] != ':' || !ReadInt(s, 3, 2, m) || h > 47 ||
      m > 59) {
    return Status::InvalidArgument("bad time '" + std::string(s) + "': expected \"HH:MM\"");
  }
  auto local_midnight = floor<days>(day.at + minutes(day.offset_min));
  return time_point_cast<milliseconds>(local_midnight) - minutes(day.offset_min) + hours(h) +
         minutes(m);
}

TimePoint SystemClock::Now() const {
  return std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
}

WarpedClock::WarpedClock(TimePoint epoch, TimePoint wall_epoch, double speed)
    : epoch_(epoch), wall_epoch_(wall_epoch), speed_(speed > 0 ? speed : 1.0) {}

TimePoint WarpedClock::Now() const {
  auto wall = std::chrono::system_clock::now() - wall_epoch_;
  auto scaled = std::chrono::duration<double, std::milli>(wall) * speed_;
  return epoch_ + std::chrono::duration_cast<Millis>(scaled);
}

std::chrono::nanoseconds WarpedClock::WallFor(Millis scenario) const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double, std::milli>(scenario) / speed_);
}

}  // namespace sitepower::core
