#include "modbus/register_map.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/yaml_reader.hpp"
#include "modbus/builtin_maps.hpp"

namespace sitepower::modbus {

namespace {

// The canonical points and where each lives in a Reading: the one list of them.
struct Field {
  const char* name;
  PointValue Reading::*member;
};
constexpr Field kFields[] = {
    {"mains_ok", &Reading::mains_ok},
    {"battery_voltage_v", &Reading::battery_voltage_v},
    {"battery_current_a", &Reading::battery_current_a},
    {"battery_temp_c", &Reading::battery_temp_c},
    {"soc_pct", &Reading::soc_pct},
    {"remaining_ah", &Reading::remaining_ah},
    {"lvd_v", &Reading::lvd_v},
    {"lvd_open", &Reading::lvd_open},
    {"generator_running", &Reading::generator_running},
    {"alarms", &Reading::alarms},
    {"ac_voltage_v", &Reading::ac_voltage_v},
    {"ac_voltage_l2_v", &Reading::ac_voltage_l2_v},
    {"ac_voltage_l3_v", &Reading::ac_voltage_l3_v},
};

PointValue Reading::*FieldOf(const std::string& name) {
  for (const Field& f : kFields)
    if (name == f.name) return f.member;
  return nullptr;
}

}  // namespace

const std::vector<std::string>& PointNames() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (const Field& f : kFields) names.push_back(f.name);
    return names;
  }();
  return kNames;
}

PointValue* ReadingSlot(Reading& r, const std::string& name) {
  PointValue Reading::*member = FieldOf(name);
  return member ? &(r.*member) : nullptr;
}

bool IsAcVoltagePoint(const std::string& name) {
  return name == "ac_voltage_v" || name == "ac_voltage_l2_v" || name == "ac_voltage_l3_v";
}

std::optional<uint32_t> TypeSentinel(ValueType t) {
  switch (t) {
    case ValueType::kU16:
      return 0xFFFFu;
    case ValueType::kS16:
      return 0x8000u;
    case ValueType::kU32:
      return 0xFFFFFFFFu;
    case ValueType::kS32:
      return 0x80000000u;
    case ValueType::kF32:
      return 0x7FC00000u;  // quiet NaN
    case ValueType::kBit:
      return std::nullopt;
  }
  return std::nullopt;
}

int PointSpec::Words() const {
  return (type == ValueType::kU32 || type == ValueType::kS32 || type == ValueType::kF32) ? 2 : 1;
}

std::vector<ReadBlock> CoalesceReads(const RegisterMap& m) {
  std::map<Function, std::set<uint16_t>> need;
  for (const auto& p : m.points) {
    for (int w = 0; w < p.Words(); ++w) need[p.fc].insert(static_cast<uint16_t>(p.address + w));
    if (p.scale_sf) need[p.fc].insert(*p.scale_sf);
  }
  std::vector<ReadBlock> blocks;
  for (const auto& [fc, addrs] : need) {
    const uint16_t limit = IsBitFunction(fc) ? kMaxBitsPerRead : m.max_block;
    std::optional<ReadBlock> cur;
    for (uint16_t a : addrs) {
      if (cur && a - cur->address < limit && a - (cur->address + cur->count) <= 32) {
        cur->count = static_cast<uint16_t>(a - cur->address + 1);
      } else {
        if (cur) blocks.push_back(*cur);
        cur = ReadBlock{fc, a, 1};
      }
    }
    if (cur) blocks.push_back(*cur);
  }
  return blocks;
}

namespace {

enum class AddressBase { kPdu, kOne, kModicon };

// First reference number of each function code's Modicon range (5 digits).
long long ModiconStart(Function fc) {
  switch (fc) {
    case Function::kReadCoils:
      return 1;
    case Function::kReadDiscreteInputs:
      return 10001;
    case Function::kReadInputRegisters:
      return 30001;
    case Function::kReadHoldingRegisters:
      return 40001;
  }
  return 40001;
}

// Reads `key` as an address of a register or bit read with `fc`, returns the
// PDU address. Records an error naming the accepted range.
std::optional<uint16_t> Address(core::YamlMap& m, const std::string& key, bool required,
                                Function fc, AddressBase base) {
  long long lo = 0, hi = 65535;
  if (base == AddressBase::kOne) {
    lo = 1;
    hi = 65536;
  } else if (base == AddressBase::kModicon) {
    lo = ModiconStart(fc);
    hi = lo + 9998;
  }
  YAML::Node n = m.node()[key];
  if (n.IsDefined() && n.IsScalar() && base == AddressBase::kModicon) {
    long long v;
    if (YAML::convert<long long>::decode(n, v) && (v < lo || v > hi)) {
      m.Child(key);
      m.errors().Add(n, m.PathOf(key),
                     "address " + std::to_string(v) + " is not a fc " +
                         std::to_string(static_cast<int>(fc)) + " reference (" +
                         std::to_string(lo) + "-" + std::to_string(hi) + " with address_base " +
                         "modicon)");
      return std::nullopt;
    }
  }
  auto v = m.Integer(key, required, lo, hi);
  if (!v) return std::nullopt;
  return static_cast<uint16_t>(*v - lo);
}

// A list of integers (YAML decimal or 0x hex) within [lo, hi].
std::optional<std::vector<long long>> IntegerList(core::YamlMap& m, const std::string& key,
                                                  long long lo, long long hi) {
  YAML::Node n = m.Child(key);
  if (!n.IsDefined()) return std::nullopt;
  if (!n.IsSequence() || n.size() == 0) {
    m.errors().Add(n, m.PathOf(key), "expected a non-empty list of integers");
    return std::nullopt;
  }
  std::vector<long long> out;
  for (size_t i = 0; i < n.size(); ++i) {
    long long v;
    const std::string path = m.PathOf(key) + "[" + std::to_string(i) + "]";
    if (!n[i].IsScalar() || !YAML::convert<long long>::decode(n[i], v)) {
      m.errors().Add(n[i], path, "expected an integer");
      return std::nullopt;
    }
    if (v < lo || v > hi) {
      m.errors().Add(n[i], path,
                     "value " + std::to_string(v) + " does not fit the register (" +
                         std::to_string(lo) + ".." + std::to_string(hi) + ")");
      return std::nullopt;
    }
    out.push_back(v);
  }
  return out;
}

const std::map<std::string, ValueType>& TypeNames() {
  static const std::map<std::string, ValueType> kTypes = {
      {"u16", ValueType::kU16}, {"s16", ValueType::kS16}, {"u32", ValueType::kU32},
      {"s32", ValueType::kS32}, {"f32", ValueType::kF32}, {"bit", ValueType::kBit}};
  return kTypes;
}

std::optional<PointSpec> ParsePoint(const YAML::Node& node, const std::string& path,
                                    AddressBase base, core::YamlErrors& errors) {
  core::YamlMap pm(node, path, errors);
  if (!pm.valid()) return std::nullopt;
  PointSpec p;
  p.line = node.Mark().line + 1;
  p.name = pm.String("name", true).value_or("");
  p.field = FieldOf(p.name);
  if (!p.name.empty() && !p.field)
    errors.Add(pm.Child("name"), pm.PathOf("name"), "unknown point '" + p.name + "'");
  long long fc = pm.Integer("fc", true, 1, 4).value_or(3);
  p.fc = static_cast<Function>(fc);
  p.address = Address(pm, "address", true, p.fc, base).value_or(0);
  std::string type = pm.String("type").value_or(IsBitFunction(p.fc) ? "bit" : "u16");
  if (auto it = TypeNames().find(type); it != TypeNames().end())
    p.type = it->second;
  else
    errors.Add(pm.Child("type"), pm.PathOf("type"), "expected u16|s16|u32|s32|f32|bit");
  const bool is_bit = p.type == ValueType::kBit;
  if (auto bit = pm.Integer("bit", false, 0, 15)) p.bit = static_cast<int>(*bit);
  if (IsBitFunction(p.fc) && !is_bit)
    errors.Add(node, path, "fc 1 and 2 read bits: type must be bit");
  if (IsBitFunction(p.fc) && p.bit)
    errors.Add(pm.Child("bit"), pm.PathOf("bit"),
               "bit selects a bit of a register (fc 3 or 4); fc 1 and 2 are bits already");
  if (!IsBitFunction(p.fc) && is_bit && !p.bit)
    errors.Add(node, path, "type bit on fc 3 or 4 needs bit: 0-15 (which bit of the register)");
  if (p.bit && !is_bit) errors.Add(pm.Child("bit"), pm.PathOf("bit"), "bit: goes with type bit");
  if (auto wo = pm.String("word_order")) {
    if (*wo == "high_first" || *wo == "ABCD")
      p.word_order = WordOrder::kHighFirst;
    else if (*wo == "low_first" || *wo == "CDAB")
      p.word_order = WordOrder::kLowFirst;
    else
      errors.Add(pm.Child("word_order"), pm.PathOf("word_order"), "expected high_first|low_first");
  }
  p.scale = pm.Number("scale").value_or(1.0);
  if (pm.Has("scale") && p.scale == 0)
    errors.Add(pm.Child("scale"), pm.PathOf("scale"), "scale 0 would erase every value");
  p.scale_sf = Address(pm, "scale_sf", false, p.fc, base);
  if (pm.Has("scale") && pm.Has("scale_sf"))
    errors.Add(node, path, "give scale or scale_sf, not both");
  p.offset = pm.Number("offset").value_or(0.0);
  p.invert = pm.Bool("invert").value_or(false);
  p.min = pm.Number("min");
  p.max = pm.Number("max");
  const bool wide = p.Words() == 2;
  if (auto absent =
          IntegerList(pm, "absent", wide ? -2147483648LL : -32768, wide ? 4294967295LL : 65535)) {
    for (long long v : *absent)
      p.absent.push_back(wide ? static_cast<uint32_t>(v)
                              : static_cast<uint32_t>(static_cast<uint16_t>(v)));
  }
  if (IsBitFunction(p.fc) && !p.absent.empty())
    errors.Add(pm.Child("absent"), pm.PathOf("absent"),
               "a coil or discrete input has no not-available value");
  long long lo = 0, hi = 65535;
  if (p.type == ValueType::kS16) lo = -32768, hi = 32767;
  if (p.type == ValueType::kU32) hi = 4294967295LL;
  if (p.type == ValueType::kS32) lo = -2147483648LL, hi = 2147483647LL;
  if (auto one_of = IntegerList(pm, "one_of", lo, hi))
    p.one_of.assign(one_of->begin(), one_of->end());
  if (!p.one_of.empty() && (is_bit || p.type == ValueType::kF32))
    errors.Add(pm.Child("one_of"), pm.PathOf("one_of"),
               "one_of reads an integer register (u16|s16|u32|s32) as 0/1");
  const bool flag = is_bit || !p.one_of.empty();
  if (flag && (pm.Has("scale") || pm.Has("scale_sf") || pm.Has("offset")))
    errors.Add(node, path, "scale, scale_sf and offset do not apply to a 0/1 point");
  if (IsAcVoltagePoint(p.name) && flag)
    errors.Add(node, path, p.name + " is a voltage, not a 0/1 point");
  pm.String("unit");
  pm.String("note");
  pm.CheckNoUnknownKeys();
  return p;
}

std::optional<MainsRule> ParseMains(const YAML::Node& node, core::YamlErrors& errors) {
  core::YamlMap mm(node, "mains", errors);
  if (!mm.valid()) return std::nullopt;
  MainsRule rule;
  rule.line = node.Mark().line + 1;
  YAML::Node from = mm.Child("from", true);
  if (from.IsScalar()) {
    rule.from.push_back(from.Scalar());
  } else if (from.IsSequence() && from.size() > 0) {
    for (size_t i = 0; i < from.size(); ++i)
      rule.from.push_back(from[i].IsScalar() ? from[i].Scalar() : "");
  } else if (from.IsDefined()) {
    errors.Add(from, "mains.from", "expected an AC voltage point or a list of them");
  }
  rule.from_current = rule.from.size() == 1 && rule.from.front() == "battery_current_a";
  if (rule.from_current) {
    rule.discharging_above_a =
        mm.Number("discharging_above_a", false, 0, 1000).value_or(rule.discharging_above_a);
    if (mm.Has("ok_above_v") || mm.Has("require"))
      errors.Add(node, "mains", "ok_above_v and require are for AC voltages, not the current");
  } else {
    for (const auto& f : rule.from) {
      if (IsAcVoltagePoint(f))
        rule.fields.push_back(FieldOf(f));
      else
        errors.Add(from, "mains.from",
                   "'" + f + "' is not an AC voltage point (ac_voltage_v|ac_voltage_l2_v|" +
                       "ac_voltage_l3_v) nor battery_current_a alone");
    }
    rule.ok_above_v = mm.Number("ok_above_v", true, 1, 100000).value_or(0);
    if (auto req = mm.String("require")) {
      if (*req == "all")
        rule.require_all = true;
      else if (*req != "any")
        errors.Add(mm.Child("require"), "mains.require", "expected any|all");
    }
    if (mm.Has("discharging_above_a"))
      errors.Add(mm.Child("discharging_above_a"), "mains.discharging_above_a",
                 "only with from: battery_current_a");
  }
  mm.String("note");
  mm.CheckNoUnknownKeys();
  return rule;
}

}  // namespace

core::Result<RegisterMap> ParseRegisterMap(const std::string& yaml, const std::string& source) {
  auto doc = core::LoadYamlString(yaml, source);
  if (!doc.ok()) return doc.status();
  core::YamlErrors errors(source);
  core::YamlMap root(*doc, "", errors);
  if (!root.valid()) return errors.ToStatus();
  RegisterMap m;
  m.source = source;
  m.name = root.String("name", true).value_or("");
  root.String("description");
  root.String("source_document");
  AddressBase base = AddressBase::kPdu;
  if (auto b = root.String("address_base")) {
    if (*b == "1")
      base = AddressBase::kOne;
    else if (*b == "modicon")
      base = AddressBase::kModicon;
    else if (*b != "0")
      errors.Add(root.Child("address_base"), "address_base", "expected 0, 1 or modicon");
  }
  m.max_block = static_cast<uint16_t>(root.Integer("max_block", false, 1, 125).value_or(125));
  m.max_connections = static_cast<int>(root.Integer("max_connections", false, 1, 64).value_or(1));
  m.max_in_flight = static_cast<int>(root.Integer("max_in_flight", false, 1, 64).value_or(1));
  if (YAML::Node ss = root.Child("sunspec"); ss.IsDefined()) {
    core::YamlMap sm(ss, "sunspec", errors);
    if (sm.valid()) {
      m.sunspec_model = static_cast<uint16_t>(sm.Integer("model", true, 1, 65534).value_or(0));
      m.sunspec_model_address =
          Address(sm, "model_address", true, Function::kReadHoldingRegisters, base).value_or(0);
      m.sunspec_model_length =
          static_cast<uint16_t>(sm.Integer("model_length", true, 0, 65535).value_or(0));
      sm.CheckNoUnknownKeys();
    }
  }
  YAML::Node points = root.Child("points", true);
  if (points.IsDefined() && !points.IsSequence()) errors.Add(points, "points", "expected a list");
  std::set<std::string> seen;
  for (size_t i = 0; points.IsSequence() && i < points.size(); ++i) {
    auto p = ParsePoint(points[i], "points[" + std::to_string(i) + "]", base, errors);
    if (!p) continue;
    if (!p->name.empty() && !seen.insert(p->name).second)
      errors.AddAtLine(p->line, "points[" + std::to_string(i) + "].name",
                       "point '" + p->name + "' defined twice");
    m.points.push_back(std::move(*p));
  }
  if (YAML::Node mains = root.Child("mains"); mains.IsDefined()) {
    m.mains = ParseMains(mains, errors);
    if (m.mains) {
      if (seen.count("mains_ok"))
        errors.Add(mains, "mains",
                   "the map has a mains_ok point already: give the point or mains:, not both");
      for (const auto& f : m.mains->from)
        if ((IsAcVoltagePoint(f) || m.mains->from_current) && !seen.count(f))
          errors.Add(mains, "mains.from", "'" + f + "' is not one of this map's points");
    }
  }
  root.CheckNoUnknownKeys();
  if (!errors.empty()) return errors.ToStatus();
  m.blocks = CoalesceReads(m);
  return m;
}

namespace {

// Decodes one point from the words; nullopt = absent (not read, a sentinel,
// or a bad scale factor: the last is also a problem).
template <typename WordAt>  // std::optional<uint16_t>(Function, uint16_t)
std::optional<double> DecodePoint(const PointSpec& p, const WordAt& word,
                                  std::vector<std::string>* problems) {
  auto w0 = word(p.fc, p.address);
  if (!w0) return std::nullopt;
  uint32_t raw = *w0;
  if (p.Words() == 2) {
    auto w1 = word(p.fc, static_cast<uint16_t>(p.address + 1));
    if (!w1) return std::nullopt;
    uint32_t hi = p.word_order == WordOrder::kHighFirst ? *w0 : *w1;
    uint32_t lo = p.word_order == WordOrder::kHighFirst ? *w1 : *w0;
    raw = hi << 16 | lo;
  }
  if (std::find(p.absent.begin(), p.absent.end(), raw) != p.absent.end()) return std::nullopt;
  double v = 0;
  switch (p.type) {
    case ValueType::kBit:
      v = p.bit ? ((raw >> *p.bit) & 1u) : (raw ? 1 : 0);
      return p.invert ? 1 - v : v;
    case ValueType::kU16:
    case ValueType::kU32:
      v = raw;
      break;
    case ValueType::kS16:
      v = static_cast<int16_t>(raw);
      break;
    case ValueType::kS32:
      v = static_cast<int32_t>(raw);
      break;
    case ValueType::kF32: {
      float f;
      std::memcpy(&f, &raw, sizeof f);
      if (!std::isfinite(f)) return std::nullopt;
      v = f;
      break;
    }
  }
  if (p.type != ValueType::kF32 && raw == *TypeSentinel(p.type)) return std::nullopt;
  if (!p.one_of.empty()) {
    v = std::find(p.one_of.begin(), p.one_of.end(), static_cast<int64_t>(v)) != p.one_of.end();
    return p.invert ? 1 - v : v;
  }
  if (p.scale_sf) {
    auto sf = word(p.fc, *p.scale_sf);
    if (!sf || *sf == 0x8000) return std::nullopt;
    int e = static_cast<int16_t>(*sf);
    if (e < -10 || e > 10) {
      if (problems)
        problems->push_back(p.name + ": scale factor " + std::to_string(e) + " at register " +
                            std::to_string(*p.scale_sf) + " is implausible");
      return std::nullopt;
    }
    v *= std::pow(10.0, e);
  } else {
    v *= p.scale;
  }
  v += p.offset;
  return p.invert ? -v : v;
}

}  // namespace

Reading DecodeReading(const RegisterMap& map, const std::vector<std::vector<uint16_t>>& data,
                      core::TimePoint at, std::vector<std::string>* problems) {
  Reading r;
  r.at = at;
  r.poll_ok = true;
  auto word = [&map, &data](Function fc, uint16_t addr) -> std::optional<uint16_t> {
    for (size_t b = 0; b < map.blocks.size() && b < data.size(); ++b) {
      const ReadBlock& blk = map.blocks[b];
      if (blk.fc == fc && addr >= blk.address && addr < blk.address + blk.count &&
          static_cast<size_t>(addr - blk.address) < data[b].size())
        return data[b][addr - blk.address];
    }
    return std::nullopt;
  };
  for (const auto& p : map.points) {
    if (!p.field) continue;
    auto v = DecodePoint(p, word, problems);
    if (!v) continue;
    if ((p.min && *v < *p.min) || (p.max && *v > *p.max)) {
      if (problems) {
        std::ostringstream m;
        m << p.name << "=" << *v << " at register " << p.address << " out of bounds";
        problems->push_back(m.str());
      }
      continue;
    }
    r.*p.field = PointValue{*v, at, Quality::kGood};
  }
  if (map.mains && map.mains->from_current) {
    r.mains_lost_above_discharge_a = map.mains->discharging_above_a;
  } else if (map.mains) {
    int read = 0, up = 0;
    for (PointValue Reading::*phase : map.mains->fields) {
      const PointValue& v = r.*phase;
      if (v.quality != Quality::kGood) continue;
      ++read;
      up += v.value > map.mains->ok_above_v;
    }
    if (read > 0) {
      bool ok = map.mains->require_all ? up == read : up > 0;
      r.mains_ok = PointValue{ok ? 1.0 : 0.0, at, Quality::kGood};
    }
  }
  return r;
}

const RegisterMap* MapRegistry::Find(const std::string& name) const {
  auto it = maps_.find(name);
  return it == maps_.end() ? nullptr : &it->second;
}

std::vector<std::string> MapRegistry::Names() const {
  std::vector<std::string> out;
  for (const auto& [n, m] : maps_) out.push_back(n);
  return out;
}

void MapRegistry::Add(RegisterMap map) {
  std::string name = map.name;
  maps_[name] = std::move(map);
}

core::Result<MapRegistry> MapRegistry::Load(const std::string& extra_dir) {
  MapRegistry reg;
  for (const auto& [file, text] : BuiltinMaps()) {
    auto m = ParseRegisterMap(text, "builtin:" + file);
    if (!m.ok()) return m.status();
    reg.Add(std::move(*m));
  }
  if (extra_dir.empty()) return reg;
  std::error_code ec;
  if (!std::filesystem::is_directory(extra_dir, ec))
    return core::Status::NotFound("maps_dir " + extra_dir + ": not a directory");
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(extra_dir, ec))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::string all_errors;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    auto m = ParseRegisterMap(ss.str(), f.string());
    if (!m.ok()) {
      all_errors += (all_errors.empty() ? "" : "\n") + m.status().message();
      continue;
    }
    reg.Add(std::move(*m));
  }
  if (!all_errors.empty()) return core::Status::InvalidArgument(all_errors);
  return reg;
}

}  // namespace sitepower::modbus
