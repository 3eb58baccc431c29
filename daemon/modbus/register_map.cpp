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

const std::vector<std::string>& PointNames() {
  static const std::vector<std::string> kNames = {
      "mains_ok",       "battery_voltage_v", "battery_current_a",
      "battery_temp_c", "soc_pct",           "remaining_ah",
      "lvd_v",          "lvd_open",          "generator_running",
      "alarms"};
  return kNames;
}

namespace {

PointValue* Slot(Reading& r, const std::string& name) {
  if (name == "mains_ok") return &r.mains_ok;
  if (name == "battery_voltage_v") return &r.battery_voltage_v;
  if (name == "battery_current_a") return &r.battery_current_a;
  if (name == "battery_temp_c") return &r.battery_temp_c;
  if (name == "soc_pct") return &r.soc_pct;
  if (name == "remaining_ah") return &r.remaining_ah;
  if (name == "lvd_v") return &r.lvd_v;
  if (name == "lvd_open") return &r.lvd_open;
  if (name == "generator_running") return &r.generator_running;
  if (name == "alarms") return &r.alarms;
  return nullptr;
}

int Words(ValueType t) {
  return (t == ValueType::kU32 || t == ValueType::kS32 || t == ValueType::kF32) ? 2 : 1;
}

}  // namespace

std::vector<ReadBlock> CoalesceReads(const RegisterMap& m) {
  std::map<Function, std::set<uint16_t>> need;
  for (const auto& p : m.points) {
    for (int w = 0; w < Words(p.type); ++w) need[p.fc].insert(static_cast<uint16_t>(p.address + w));
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
  const long long base = root.Integer("address_base", false, 0, 1).value_or(0);
  m.max_block = static_cast<uint16_t>(root.Integer("max_block", false, 1, 125).value_or(125));
  m.max_connections = static_cast<int>(root.Integer("max_connections", false, 1, 64).value_or(1));
  m.max_in_flight = static_cast<int>(root.Integer("max_in_flight", false, 1, 64).value_or(1));
  if (YAML::Node ss = root.Child("sunspec"); ss.IsDefined()) {
    core::YamlMap sm(ss, "sunspec", errors);
    if (sm.valid()) {
      m.sunspec_model = static_cast<uint16_t>(sm.Integer("model", true, 1, 65534).value_or(0));
      m.sunspec_model_address = static_cast<uint16_t>(
          sm.Integer("model_address", true, base, 65535 + base).value_or(base) - base);
      m.sunspec_model_length =
          static_cast<uint16_t>(sm.Integer("model_length", true, 0, 65535).value_or(0));
      sm.CheckNoUnknownKeys();
    }
  }
  YAML::Node points = root.Child("points", true);
  if (points.IsDefined() && !points.IsSequence()) errors.Add(points, "points", "expected a list");
  std::set<std::string> seen;
  for (size_t i = 0; points.IsSequence() && i < points.size(); ++i) {
    core::YamlMap pm(points[i], "points[" + std::to_string(i) + "]", errors);
    if (!pm.valid()) continue;
    PointSpec p;
    p.line = points[i].Mark().line + 1;
    p.name = pm.String("name", true).value_or("");
    const auto& names = PointNames();
    if (!p.name.empty() && std::find(names.begin(), names.end(), p.name) == names.end())
      errors.Add(pm.Child("name"), pm.PathOf("name"), "unknown point '" + p.name + "'");
    if (!p.name.empty() && !seen.insert(p.name).second)
      errors.Add(pm.Child("name"), pm.PathOf("name"), "point '" + p.name + "' defined twice");
    long long fc = pm.Integer("fc", true, 1, 4).value_or(3);
    p.fc = static_cast<Function>(fc);
    long long addr = pm.Integer("address", true, base, 65535 + base).value_or(base);
    p.address = static_cast<uint16_t>(addr - base);
    std::string type = pm.String("type").value_or(IsBitFunction(p.fc) ? "bit" : "u16");
    static const std::map<std::string, ValueType> kTypes = {
        {"u16", ValueType::kU16}, {"s16", ValueType::kS16}, {"u32", ValueType::kU32},
        {"s32", ValueType::kS32}, {"f32", ValueType::kF32}, {"bit", ValueType::kBit}};
    if (auto it = kTypes.find(type); it != kTypes.end())
      p.type = it->second;
    else
      errors.Add(pm.Child("type"), pm.PathOf("type"), "expected u16|s16|u32|s32|f32|bit");
    if ((p.type == ValueType::kBit) != IsBitFunction(p.fc))
      errors.Add(points[i], pm.path(),
                 "type bit goes with fc 1 or 2, register types with fc 3 or 4");
    if (auto wo = pm.String("word_order")) {
      if (*wo == "high_first" || *wo == "ABCD")
        p.word_order = WordOrder::kHighFirst;
      else if (*wo == "low_first" || *wo == "CDAB")
        p.word_order = WordOrder::kLowFirst;
      else
        errors.Add(pm.Child("word_order"), pm.PathOf("word_order"),
                   "expected high_first|low_first");
    }
    p.scale = pm.Number("scale").value_or(1.0);
    if (auto sf = pm.Integer("scale_sf", false, base, 65535 + base))
      p.scale_sf = static_cast<uint16_t>(*sf - base);
    if (pm.Has("scale") && pm.Has("scale_sf"))
      errors.Add(points[i], pm.path(), "give scale or scale_sf, not both");
    p.invert = pm.Bool("invert").value_or(false);
    p.min = pm.Number("min");
    p.max = pm.Number("max");
    pm.String("unit");
    pm.String("note");
    pm.CheckNoUnknownKeys();
    m.points.push_back(p);
  }
  root.CheckNoUnknownKeys();
  if (!errors.empty()) return errors.ToStatus();
  m.blocks = CoalesceReads(m);
  return m;
}

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
    PointValue* slot = Slot(r, p.name);
    if (!slot) continue;
    auto w0 = word(p.fc, p.address);
    if (!w0) continue;
    double v = 0;
    bool sentinel = false;
    switch (p.type) {
      case ValueType::kBit:
        v = *w0 ? 1 : 0;
        break;
      case ValueType::kU16:
        v = *w0;
        sentinel = *w0 == 0xFFFF;
        break;
      case ValueType::kS16:
        v = static_cast<int16_t>(*w0);
        sentinel = *w0 == 0x8000;
        break;
      default: {
        auto w1 = word(p.fc, static_cast<uint16_t>(p.address + 1));
        if (!w1) continue;
        uint32_t hi = p.word_order == WordOrder::kHighFirst ? *w0 : *w1;
        uint32_t lo = p.word_order == WordOrder::kHighFirst ? *w1 : *w0;
        uint32_t u = hi << 16 | lo;
        if (p.type == ValueType::kU32) {
          v = u;
          sentinel = u == 0xFFFFFFFFu;
        } else if (p.type == ValueType::kS32) {
          v = static_cast<int32_t>(u);
          sentinel = u == 0x80000000u;
        } else {
          float f;
          std::memcpy(&f, &u, sizeof f);
          v = f;
          sentinel = !std::isfinite(f);
        }
      }
    }
    if (sentinel) continue;  // not implemented: absent, never a number
    if (p.scale_sf) {
      auto sf = word(p.fc, *p.scale_sf);
      if (!sf || *sf == 0x8000) continue;
      int e = static_cast<int16_t>(*sf);
      if (e < -10 || e > 10) {
        if (problems)
          problems->push_back(p.name + ": scale factor " + std::to_string(e) + " at register " +
                              std::to_string(*p.scale_sf) + " is implausible");
        continue;
      }
      v *= std::pow(10.0, e);
    } else {
      v *= p.scale;
    }
    if (p.invert) v = p.type == ValueType::kBit ? (v ? 0 : 1) : -v;
    if ((p.min && v < *p.min) || (p.max && v > *p.max)) {
      if (problems) {
        std::ostringstream m;
        m << p.name << "=" << v << " at register " << p.address << " out of bounds";
        problems->push_back(m.str());
      }
      continue;
    }
    *slot = PointValue{v, at, Quality::kGood};
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
