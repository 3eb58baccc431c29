// Telemetry recordings: every sample the poller took, in a compact binary
// file, so a real outage can be replayed and studied. Pure codec: bytes in,
// samples out; the daemon appends (config `recording:`), tools read.
//
// Format v1: the magic "SPREC1\n", then records. 'S' defines the next site
// index: varint length + UTF-8 id. 'D' is one sample: varint site index,
// zigzag-varint milliseconds since the previous sample (the first since the
// epoch), a byte of which values are present (bit 0 voltage, 1 current, 2
// temperature, 3 SoC, 4 mains, 5 generator, 6 LVD open), a byte with the
// three flags' values (bits 4-6) and bit 0 set for a poll that failed, then
// each present number as a zigzag varint of voltage x100, current x10 (+ =
// discharging), temperature x10, SoC x10. About 14 bytes a sample; a failed
// poll is a sample with no values and bit 0 (about 6 bytes), so a replay knows the
// holes exactly. (A reader that predates bit 0 sees a sample with no values.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sitepower::recording {

struct Sample {
  int64_t t_ms = 0;  // daemon clock, ms since the Unix epoch
  std::string site;
  std::optional<double> voltage_v, current_a, temp_c, soc_pct;
  std::optional<bool> mains_ok, generator_running, lvd_open;
  bool poll_failed = false;  // the poll at t_ms failed (timeout, refusal...): no values
};

// Appends to `out` (a byte string the caller writes to a file).
class Writer {
 public:
  // Continue a file whose valid part was `existing` (see Parse), or a new one.
  explicit Writer(std::string_view existing = {});
  // Encodes one sample (and the site's definition the first time) onto `out`;
  // the magic is written first when `out` starts a new file.
  void Add(const Sample& s, std::string* out);

 private:
  std::vector<std::string> sites_;
  bool started_ = false;
  int64_t last_t_ = 0;
};

struct Parsed {
  std::vector<Sample> samples;
  size_t valid_bytes = 0;  // the prefix that parsed; a writer continues from here
  std::string error;       // empty, or what is wrong and at which byte offset
};

// Never throws; a damaged or truncated file gives every sample before the
// damage and says where it is.
Parsed Parse(std::string_view bytes);

}  // namespace sitepower::recording
