#include "recording/recording.hpp"

#include <cmath>

namespace sitepower::recording {
namespace {

constexpr std::string_view kMagic = "SPREC1\n";
constexpr double kScale[4] = {100, 10, 10, 10};         // V, A, T, SoC
constexpr double kLimit[4] = {1000, 100000, 200, 100};  // |value| a real controller can show
constexpr uint8_t kFailedFlag = 0x01;                   // flags bit 0: the poll failed

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
uint64_t Zig(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t Unzig(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

struct Reader {
  std::string_view b;
  size_t at = 0;
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at >= b.size()) return false;
      uint8_t c = static_cast<uint8_t>(b[at++]);
      *v |= static_cast<uint64_t>(c & 0x7F) << shift;
      if (!(c & 0x80)) return true;
    }
    return false;  // longer than 10 bytes: not a varint we wrote
  }
  bool Byte(uint8_t* v) {
    if (at >= b.size()) return false;
    *v = static_cast<uint8_t>(b[at++]);
    return true;
  }
};

}  // namespace

Writer::Writer(std::string_view existing) {
  Parsed p = Parse(existing);
  started_ = p.valid_bytes >= kMagic.size();
  for (const auto& s : p.samples) {
    bool known = false;
    for (const auto& k : sites_) known = known || k == s.site;
    if (!known) sites_.push_back(s.site);
  }
  if (!p.samples.empty()) last_t_ = p.samples.back().t_ms;
  // Sites defined but never sampled are redefined on first use (harmless).
}

void Writer::Add(const Sample& s, std::string* out) {
  if (!started_) {
    out->append(kMagic);
    started_ = true;
  }
  size_t index = 0;
  while (index < sites_.size() && sites_[index] != s.site) ++index;
  if (index == sites_.size()) {
    sites_.push_back(s.site);
    out->push_back('S');
    PutVarint(out, s.site.size());
    out->append(s.site);
  }
  out->push_back('D');
  PutVarint(out, index);
  PutVarint(out, Zig(s.t_ms - last_t_));
  last_t_ = s.t_ms;
  const std::optional<double>* nums[4] = {&s.voltage_v, &s.current_a, &s.temp_c, &s.soc_pct};
  uint8_t present = 0, flags = 0;
  for (int k = 0; k < 4; ++k)
    if (*nums[k] && std::isfinite(**nums[k]) && std::abs(**nums[k]) <= kLimit[k])
      present |= static_cast<uint8_t>(1u << k);
  const std::optional<bool>* bits[3] = {&s.mains_ok, &s.generator_running, &s.lvd_open};
  if (s.poll_failed) {
    present = 0;  // a failed poll has no values
    flags = kFailedFlag;
  }
  for (int k = 0; k < 3 && !s.poll_failed; ++k)
    if (*bits[k]) {
      present |= static_cast<uint8_t>(1u << (4 + k));
      if (**bits[k]) flags |= static_cast<uint8_t>(1u << (4 + k));
    }
  out->push_back(static_cast<char>(present));
  out->push_back(static_cast<char>(flags));
  for (int k = 0; k < 4; ++k)
    if (present & (1u << k)) PutVarint(out, Zig(std::llround(**nums[k] * kScale[k])));
}

Parsed Parse(std::string_view bytes) {
  Parsed p;
  if (bytes.empty()) return p;
  if (bytes.substr(0, kMagic.size()) != kMagic) {
    p.error = "byte 0: not a sitepower recording (expected \"SPREC1\")";
    return p;
  }
  Reader r{bytes, kMagic.size()};
  p.valid_bytes = r.at;
  std::vector<std::string> sites;
  int64_t t = 0;
  auto fail = [&p](size_t at, const std::string& what) {
    p.error = "byte " + std::to_string(at) + ": " + what;
    return p;
  };
  while (r.at < bytes.size()) {
    const size_t start = r.at;
    uint8_t type = 0;
    r.Byte(&type);
    if (type == 'S') {
      uint64_t len = 0;
      if (!r.Varint(&len) || len == 0 || len > 256 || r.at + len > bytes.size())
        return fail(start, "site definition truncated or longer than 256 bytes");
      sites.emplace_back(bytes.substr(r.at, len));
      r.at += len;
    } else if (type == 'D') {
      uint64_t index = 0, dt = 0;
      uint8_t present = 0, flags = 0;
      if (!r.Varint(&index) || !r.Varint(&dt) || !r.Byte(&present) || !r.Byte(&flags))
        return fail(start, "sample truncated");
      if (index >= sites.size())
        return fail(start, "sample for site #" + std::to_string(index) + ", only " +
                               std::to_string(sites.size()) + " defined");
      if (present & 0x80) return fail(start, "unknown value bit in sample");
      if ((flags & kFailedFlag) && present) return fail(start, "failed poll with values");
      Sample s;
      s.site = sites[index];
      int64_t delta = Unzig(dt);
      if (delta > int64_t{1} << 50 || delta < -(int64_t{1} << 50))
        return fail(start, "time step out of range");
      t += delta;
      s.t_ms = t;
      s.poll_failed = flags & kFailedFlag;
      std::optional<double>* nums[4] = {&s.voltage_v, &s.current_a, &s.temp_c, &s.soc_pct};
      for (int k = 0; k < 4; ++k) {
        if (!(present & (1u << k))) continue;
        uint64_t v = 0;
        if (!r.Varint(&v)) return fail(start, "sample truncated");
        double x = static_cast<double>(Unzig(v)) / kScale[k];
        if (std::abs(x) > kLimit[k]) return fail(start, "value out of range");
        *nums[k] = x;
      }
      std::optional<bool>* bits[3] = {&s.mains_ok, &s.generator_running, &s.lvd_open};
      for (int k = 0; k < 3; ++k)
        if (present & (1u << (4 + k))) *bits[k] = (flags >> (4 + k)) & 1;
      p.samples.push_back(std::move(s));
    } else {
      return fail(start, "unknown record type " + std::to_string(type));
    }
    p.valid_bytes = r.at;
  }
  return p;
}

}  // namespace sitepower::recording
