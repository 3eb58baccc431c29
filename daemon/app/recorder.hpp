// Appends every poll's telemetry to the recording file (config `recording:`).
// On start it keeps the valid part of an existing file (a torn tail from a
// kill -9 is cut off) and continues it. Writes are batched and flushed every
// few seconds: a crash loses at most that much telemetry, never the file.
#pragma once

#include <fstream>
#include <iterator>
#include <string>

#include "app/log.hpp"
#include "modbus/register_map.hpp"
#include "recording/recording.hpp"

namespace sitepower::app {

class Recorder {
 public:
  explicit Recorder(std::string path) : path_(std::move(path)) {
    if (path_.empty()) return;
    std::string existing;
    {
      std::ifstream in(path_, std::ios::binary);
      existing.assign(std::istreambuf_iterator<char>(in), {});
    }
    recording::Parsed p = recording::Parse(existing);
    if (!p.error.empty())
      LogLine(LogLevel::kWarning, "recording",
              {{"path", path_}, {"kept_bytes", std::to_string(p.valid_bytes)}, {"error", p.error}});
    existing.resize(p.valid_bytes);
    writer_ = recording::Writer(existing);
    out_.open(path_, std::ios::binary | std::ios::trunc);
    out_ << existing;
    out_.flush();
    if (!out_) LogLine(LogLevel::kError, "recording", {{"path", path_}, {"error", "cannot write"}});
  }
  bool enabled() const { return out_.is_open() && out_.good(); }

  // A failed poll is recorded too (no values), so a replay knows the holes.
  void Add(const core::SiteId& site, const modbus::Reading& r) {
    if (!enabled()) return;
    recording::Sample s;
    s.site = site;
    s.t_ms = r.at.time_since_epoch().count();
    if (!r.poll_ok) {
      s.poll_failed = true;
      writer_.Add(s, &buffer_);
      if (buffer_.size() > 64 * 1024) Flush();
      return;
    }
    auto num = [](const modbus::PointValue& p) -> std::optional<double> {
      if (p.quality == modbus::Quality::kGood) return p.value;
      return std::nullopt;
    };
    auto bit = [](const modbus::PointValue& p) -> std::optional<bool> {
      if (p.quality == modbus::Quality::kGood) return p.value != 0;
      return std::nullopt;
    };
    s.voltage_v = num(r.battery_voltage_v);
    s.current_a = num(r.battery_current_a);
    s.temp_c = num(r.battery_temp_c);
    s.soc_pct = num(r.soc_pct);
    s.mains_ok = bit(r.mains_ok);
    s.generator_running = bit(r.generator_running);
    s.lvd_open = bit(r.lvd_open);
    writer_.Add(s, &buffer_);
    if (buffer_.size() > 64 * 1024) Flush();
  }
  void Flush() {
    if (!enabled() || buffer_.empty()) return;
    out_.write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
    out_.flush();
    buffer_.clear();
  }

 private:
  std::string path_;
  recording::Writer writer_;
  std::string buffer_;
  std::ofstream out_;
};

}  // namespace sitepower::app
