#include "modbus/map_image.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

namespace sitepower::modbus {

std::optional<double> CanonicalValue(const CanonicalValues& v, const std::string& name) {
  auto flag = [](const std::optional<bool>& b) -> std::optional<double> {
    if (!b) return std::nullopt;
    return *b ? 1.0 : 0.0;
  };
  if (name == "mains_ok") return flag(v.mains_ok);
  if (name == "battery_voltage_v") return v.battery_voltage_v;
  if (name == "battery_current_a") return v.battery_current_a;
  if (name == "battery_temp_c") return v.battery_temp_c;
  if (name == "soc_pct") return v.soc_pct;
  if (name == "remaining_ah") return v.remaining_ah;
  if (name == "lvd_v") return v.lvd_v;
  if (name == "lvd_open") return flag(v.lvd_open);
  if (name == "generator_running") return flag(v.generator_running);
  if (name == "alarms") return v.alarms;
  if (name == "ac_voltage_v") return v.ac_voltage_v;
  if (name == "ac_voltage_l2_v") return v.ac_voltage_l2_v;
  if (name == "ac_voltage_l3_v") return v.ac_voltage_l3_v;
  return std::nullopt;
}

std::optional<uint16_t> RegisterImage::Get(Function fc, uint16_t address) const {
  auto t = words.find(fc);
  if (t == words.end()) return std::nullopt;
  auto w = t->second.find(address);
  if (w == t->second.end()) return std::nullopt;
  return w->second;
}

std::vector<std::vector<uint16_t>> RegisterImage::Blocks(const RegisterMap& map,
                                                         uint16_t fill) const {
  std::vector<std::vector<uint16_t>> out;
  for (const auto& b : map.blocks) {
    std::vector<uint16_t> d(b.count, fill);
    for (uint16_t i = 0; i < b.count; ++i)
      d[i] = Get(b.fc, static_cast<uint16_t>(b.address + i)).value_or(fill);
    out.push_back(std::move(d));
  }
  return out;
}

namespace {

std::string Where(Function fc, uint16_t address) {
  return "fc " + std::to_string(static_cast<int>(fc)) + " address " + std::to_string(address);
}

core::Status Invalid(const PointSpec& p, const std::string& why) {
  return core::Status::InvalidArgument("map point " + p.name + " (line " + std::to_string(p.line) +
                                       "): " + why);
}

// Writes bits of words and refuses to change a bit another point wrote.
class Writer {
 public:
  explicit Writer(RegisterImage& img) : img_(img) {}
  core::Status Write(Function fc, uint16_t address, uint16_t value, uint16_t mask,
                     const std::string& who) {
    auto key = std::make_pair(fc, address);
    uint16_t& word = img_.words[fc][address];
    uint16_t& owned = owned_[key];
    if ((word ^ value) & owned & mask)
      return core::Status::InvalidArgument(who + " contradicts " + owner_[key] + " at " +
                                           Where(fc, address));
    word = static_cast<uint16_t>((word & ~mask) | (value & mask));
    owned |= mask;
    owner_[key] = who;
    return core::Status::Ok();
  }
  core::Status WriteRaw(const PointSpec& p, uint32_t raw) {
    if (p.Words() == 1) return Write(p.fc, p.address, static_cast<uint16_t>(raw), 0xFFFF, p.name);
    uint16_t hi = static_cast<uint16_t>(raw >> 16), lo = static_cast<uint16_t>(raw & 0xFFFF);
    bool high_first = p.word_order == WordOrder::kHighFirst;
    core::Status st = Write(p.fc, p.address, high_first ? hi : lo, 0xFFFF, p.name);
    if (!st.ok()) return st;
    return Write(p.fc, static_cast<uint16_t>(p.address + 1), high_first ? lo : hi, 0xFFFF, p.name);
  }

 private:
  RegisterImage& img_;
  std::map<std::pair<Function, uint16_t>, uint16_t> owned_;
  std::map<std::pair<Function, uint16_t>, std::string> owner_;
};

bool Fits(ValueType t, long long r) {
  switch (t) {
    case ValueType::kU16:
      return r >= 0 && r <= 0xFFFF;
    case ValueType::kS16:
      return r >= -32768 && r <= 32767;
    case ValueType::kU32:
      return r >= 0 && r <= 0xFFFFFFFFLL;
    case ValueType::kS32:
      return r >= -2147483648LL && r <= 2147483647LL;
    default:
      return false;
  }
}

uint32_t Bits(ValueType t, long long r) {
  if (t == ValueType::kS16) return static_cast<uint16_t>(static_cast<int16_t>(r));
  return static_cast<uint32_t>(r);
}

bool NotAvailable(const PointSpec& p, uint32_t raw) {
  if (std::find(p.absent.begin(), p.absent.end(), raw) != p.absent.end()) return true;
  return p.type != ValueType::kF32 && raw == TypeSentinel(p.type).value_or(0);
}

// The raw register value that decodes to `v` with the step `step`.
core::Result<uint32_t> RawNumber(const PointSpec& p, double v, double step) {
  double x = ((p.invert ? -v : v) - p.offset) / step;
  uint32_t raw;
  if (p.type == ValueType::kF32) {
    float f = static_cast<float>(x);
    if (!std::isfinite(f)) return Invalid(p, "value does not fit a float");
    std::memcpy(&raw, &f, sizeof raw);
  } else {
    double r = std::round(x);
    if (!std::isfinite(r) || r < -4294967296.0 || r > 4294967296.0 ||
        !Fits(p.type, static_cast<long long>(r))) {
      std::ostringstream m;
      m << "value " << v << " does not fit the register (raw " << r << ")";
      return Invalid(p, m.str());
    }
    raw = Bits(p.type, static_cast<long long>(r));
  }
  if (NotAvailable(p, raw)) {
    std::ostringstream m;
    m << "value " << v << " would be served as the not-available value 0x" << std::hex << raw;
    return Invalid(p, m.str());
  }
  return raw;
}

uint32_t AbsentRaw(const PointSpec& p) {
  return p.absent.empty() ? TypeSentinel(p.type).value_or(0) : p.absent.front();
}

// The finest exponent (-6..6) at which `v` fits the point's register.
core::Result<int> FinestExponent(const PointSpec& p, double v) {
  for (int e = -6; e <= 6; ++e)
    if (RawNumber(p, v, std::pow(10.0, e)).ok()) return e;
  std::ostringstream m;
  m << "value " << v << " does not fit the register at any scale factor";
  return Invalid(p, m.str());
}

bool MainsUp(const MainsRule& rule, const CanonicalValues& v) {
  int read = 0, up = 0;
  for (const auto& phase : rule.from) {
    auto volts = CanonicalValue(v, phase);
    if (!volts) continue;
    ++read;
    up += *volts > rule.ok_above_v;
  }
  return read > 0 && (rule.require_all ? up == read : up > 0);
}

void SetAc(CanonicalValues& v, const std::string& phase, double volts) {
  if (phase == "ac_voltage_v") v.ac_voltage_v = volts;
  if (phase == "ac_voltage_l2_v") v.ac_voltage_l2_v = volts;
  if (phase == "ac_voltage_l3_v") v.ac_voltage_l3_v = volts;
}

// Fills in the AC voltages a `mains:` rule reads from mains_ok, and checks
// that given voltages agree with a given mains_ok.
core::Result<CanonicalValues> WithMainsVoltages(const RegisterMap& map, CanonicalValues v) {
  // A rule on the battery current reads the current the caller gives.
  if (!map.mains || map.mains->from_current || !v.mains_ok) return v;
  const MainsRule& rule = *map.mains;
  const double nominal = std::max(230.0, rule.ok_above_v * 1.1);
  for (const auto& phase : rule.from)
    if (!CanonicalValue(v, phase)) SetAc(v, phase, *v.mains_ok ? nominal : 0.0);
  if (MainsUp(rule, v) != *v.mains_ok)
    return core::Status::InvalidArgument(
        "map " + map.name + ": mains_ok=" + (*v.mains_ok ? "1" : "0") +
        " contradicts the AC voltages given (mains: above " + std::to_string(rule.ok_above_v) +
        " V, " + (rule.require_all ? "all" : "any") + " phase)");
  return v;
}

// Points that read one enum register as 0/1 (`one_of`), grouped by register:
// one raw value has to say what every one of them is.
core::Status EncodeEnums(const std::vector<const PointSpec*>& group, const CanonicalValues& v,
                         Writer& w, RegisterImage& img) {
  const PointSpec& first = *group.front();
  std::vector<long long> candidates;
  bool constrained = false;
  for (const PointSpec* p : group) {
    candidates.insert(candidates.end(), p->one_of.begin(), p->one_of.end());
    constrained |= CanonicalValue(v, p->name).has_value();
    img.resolution[p->name] = 0;
  }
  if (!constrained) return w.WriteRaw(first, AbsentRaw(first));
  for (long long c = 0; c <= 1024; ++c) candidates.push_back(c);
  for (long long c : candidates) {
    bool ok = Fits(first.type, c);
    for (const PointSpec* p : group) {
      if (!ok) break;
      uint32_t raw = Bits(p->type, c);
      if (NotAvailable(*p, raw)) ok = false;
      auto want = CanonicalValue(v, p->name);
      bool in = std::find(p->one_of.begin(), p->one_of.end(), c) != p->one_of.end();
      if (want && (in != p->invert) != (*want != 0)) ok = false;
    }
    if (ok) return w.WriteRaw(first, Bits(first.type, c));
  }
  std::string names;
  for (const PointSpec* p : group) names += (names.empty() ? "" : ", ") + p->name;
  return core::Status::InvalidArgument("no value of " + Where(first.fc, first.address) +
                                       " says what was asked of " + names + " at once");
}

}  // namespace

core::Result<RegisterImage> EncodeImage(const RegisterMap& map, const CanonicalValues& given) {
  auto values = WithMainsVoltages(map, given);
  if (!values.ok()) return values.status();
  const CanonicalValues& v = *values;
  RegisterImage img;
  Writer w(img);

  // Scale-factor registers first: the finest exponent all their users fit.
  std::map<std::pair<Function, uint16_t>, int> exponent;
  for (const auto& p : map.points) {
    auto value = CanonicalValue(v, p.name);
    if (!p.scale_sf || !value) continue;
    auto e = FinestExponent(p, *value);
    if (!e.ok()) return e.status();
    auto key = std::make_pair(p.fc, *p.scale_sf);
    auto it = exponent.find(key);
    exponent[key] = it == exponent.end() ? *e : std::max(it->second, *e);
  }
  for (const auto& p : map.points) {
    if (!p.scale_sf) continue;
    auto it = exponent.find({p.fc, *p.scale_sf});
    uint16_t sf = it == exponent.end() ? 0x8000 : static_cast<uint16_t>(it->second);
    core::Status st = w.Write(p.fc, *p.scale_sf, sf, 0xFFFF, p.name + " scale factor");
    if (!st.ok()) return st;
  }

  std::map<std::pair<Function, uint16_t>, std::vector<const PointSpec*>> enums;
  for (const auto& p : map.points) {
    if (!p.one_of.empty()) {
      enums[{p.fc, p.address}].push_back(&p);
      continue;
    }
    auto value = CanonicalValue(v, p.name);
    if (value && ((p.min && *value < *p.min) || (p.max && *value > *p.max))) {
      std::ostringstream m;
      m << "value " << *value << " is outside the map's bounds";
      return Invalid(p, m.str());
    }
    core::Status st;
    if (p.type == ValueType::kBit) {
      img.resolution[p.name] = 0;
      if (!value) continue;  // a bit has no not-available value
      uint16_t raw = (*value != 0) != p.invert ? 1 : 0;
      st = p.bit ? w.Write(p.fc, p.address, static_cast<uint16_t>(raw << *p.bit),
                           static_cast<uint16_t>(1u << *p.bit), p.name)
                 : w.Write(p.fc, p.address, raw, 0xFFFF, p.name);
    } else if (!value) {
      st = w.WriteRaw(p, AbsentRaw(p));
    } else {
      double step = p.scale;
      if (p.scale_sf) step = std::pow(10.0, exponent.at({p.fc, *p.scale_sf}));
      auto raw = RawNumber(p, *value, step);
      if (!raw.ok()) return raw.status();
      img.resolution[p.name] =
          p.type == ValueType::kF32
              ? std::max(std::abs(*value - p.offset) * 1.2e-7, std::abs(step) * 1e-30)
              : std::abs(step);
      st = w.WriteRaw(p, *raw);
    }
    if (!st.ok()) return st;
  }
  for (const auto& [where, group] : enums) {
    core::Status st = EncodeEnums(group, v, w, img);
    if (!st.ok()) return st;
  }
  return img;
}

}  // namespace sitepower::modbus
