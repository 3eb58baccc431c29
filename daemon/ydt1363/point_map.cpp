#include "ydt1363/point_map.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/yaml_reader.hpp"
#include "ydt1363/builtin_maps.hpp"
#include "ydt1363/frame.hpp"

namespace sitepower::ydt1363 {

namespace {

const std::map<std::string, ValueType>& TypeNames() {
  static const std::map<std::string, ValueType> kTypes = {
      {"u8", ValueType::kU8},   {"u16", ValueType::kU16}, {"s16", ValueType::kS16},
      {"u24", ValueType::kU24}, {"u32", ValueType::kU32}, {"s32", ValueType::kS32},
      {"f32", ValueType::kF32}};
  return kTypes;
}

// The register type a value is carried in on its virtual registers.
const char* VirtualType(ValueType t) {
  switch (t) {
    case ValueType::kU8:
    case ValueType::kU16:
      return "u16";
    case ValueType::kS16:
      return "s16";
    case ValueType::kU24:
    case ValueType::kU32:
      return "u32";
    case ValueType::kS32:
      return "s32";
    case ValueType::kF32:
      return "f32";
  }
  return "u16";
}

int VirtualWords(ValueType t) { return ValueBytes(t) > 2 ? 2 : 1; }

// The raw value of `t` at `p` (bytes known to be there), as the 32 bits its
// virtual registers carry.
uint32_t ReadRaw(ValueType t, const uint8_t* p) {
  switch (t) {
    case ValueType::kU8:
      return p[0];
    case ValueType::kU16:
    case ValueType::kS16:
      return static_cast<uint32_t>(p[0] << 8 | p[1]);
    case ValueType::kU24:
      return static_cast<uint32_t>(p[0] << 16 | p[1] << 8 | p[2]);
    case ValueType::kU32:
    case ValueType::kS32:
      return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
             static_cast<uint32_t>(p[2]) << 8 | p[3];
    case ValueType::kF32:  // least significant byte first
      return static_cast<uint32_t>(p[3]) << 24 | static_cast<uint32_t>(p[2]) << 16 |
             static_cast<uint32_t>(p[1]) << 8 | p[0];
  }
  return 0;
}

void WriteRaw(ValueType t, uint32_t raw, std::vector<uint8_t>* out) {
  switch (t) {
    case ValueType::kU8:
      out->push_back(static_cast<uint8_t>(raw));
      return;
    case ValueType::kU16:
    case ValueType::kS16:
      out->push_back(static_cast<uint8_t>(raw >> 8));
      out->push_back(static_cast<uint8_t>(raw));
      return;
    case ValueType::kU24:
      for (int s : {16, 8, 0}) out->push_back(static_cast<uint8_t>(raw >> s));
      return;
    case ValueType::kU32:
    case ValueType::kS32:
      for (int s : {24, 16, 8, 0}) out->push_back(static_cast<uint8_t>(raw >> s));
      return;
    case ValueType::kF32:
      for (int s : {0, 8, 16, 24}) out->push_back(static_cast<uint8_t>(raw >> s));
      return;
  }
}

// The not-available value of a virtual register type (what an item the
// device did not send decodes from).
uint32_t Sentinel(ValueType t) {
  switch (t) {
    case ValueType::kU8:
    case ValueType::kU16:
      return 0xFFFFu;
    case ValueType::kS16:
      return 0x8000u;
    case ValueType::kU24:
    case ValueType::kU32:
      return 0xFFFFFFFFu;
    case ValueType::kS32:
      return 0x80000000u;
    case ValueType::kF32:
      return 0x7FC00000u;
  }
  return 0xFFFFu;
}

void Put(std::vector<uint16_t>* out, uint16_t slot, ValueType t, uint32_t raw) {
  if (VirtualWords(t) == 2) {
    (*out)[slot] = static_cast<uint16_t>(raw >> 16);
    (*out)[slot + 1] = static_cast<uint16_t>(raw);
  } else {
    (*out)[slot] = static_cast<uint16_t>(raw);
  }
}

uint32_t Get(std::span<const uint16_t> words, uint16_t slot, ValueType t) {
  if (slot >= words.size()) return 0;
  if (VirtualWords(t) == 2)
    return slot + 1u < words.size() ? static_cast<uint32_t>(words[slot]) << 16 | words[slot + 1]
                                    : 0;
  return words[slot];
}

std::string Describe(const Item& it, size_t i) {
  std::string what;
  switch (it.kind) {
    case Item::Kind::kValue:
      what = ValueTypeName(it.type);
      break;
    case Item::Kind::kSkip:
      what = "skip " + std::to_string(it.skip);
      break;
    case Item::Kind::kList:
      what = std::string("list of ") + ValueTypeName(it.type);
      break;
  }
  return "item " + std::to_string(i) + " (" + what + ", line " + std::to_string(it.line) + ")";
}

// Value keys a mapped item hands to the register-map parser unchanged.
constexpr const char* kValueKeys[] = {"scale",  "offset", "invert", "min", "max",
                                      "absent", "one_of", "unit",   "note"};

// Collects the generated register-map rows, each placed on the line of the
// item it came from, so the register-map parser's errors name the right line.
class RowWriter {
 public:
  explicit RowWriter(const std::string& name) {
    Line("name: \"" + name + "\"");
    Line("points:");
  }
  void At(int line, const std::string& text) {
    while (lines_ + 1 < line) Line("");
    Line(text);
  }
  std::string text() const { return out_.str(); }

 private:
  void Line(const std::string& s) {
    out_ << s << "\n";
    ++lines_;
  }
  std::ostringstream out_;
  int lines_ = 0;
};

std::string FlowRow(const YAML::Node& row) {
  YAML::Emitter e;
  e << YAML::Flow << row;
  return e.c_str();
}

// Reads one mapped value (an item or an element of a list): records the pick
// and writes its register-map row.
void ParsePick(core::YamlMap& pm, ValueType type, Item* item, size_t index, Command* cmd,
               RowWriter* rows, uint16_t* next_slot) {
  Item::Pick pick;
  pick.index = index;
  pick.point = pm.String("name", true).value_or("");
  pick.slot = *next_slot;
  *next_slot = static_cast<uint16_t>(*next_slot + VirtualWords(type));
  YAML::Node row;
  row["name"] = pick.point;
  row["fc"] = 3;
  row["address"] = cmd->base + pick.slot;
  row["type"] = VirtualType(type);
  if (auto bit = pm.Integer("bit", false, 0, static_cast<long long>(8 * ValueBytes(type)) - 1)) {
    if (VirtualWords(type) == 2)
      pm.errors().Add(pm.Child("bit"), pm.PathOf("bit"), "bit: goes with u8, u16 or s16");
    row["type"] = "bit";
    row["bit"] = *bit;
    // An item the device did not send carries 0xFFFF: absent, not 0.
    row["absent"].push_back(0xFFFF);
  }
  for (const char* key : kValueKeys) {
    YAML::Node v = pm.Child(key);
    if (!v.IsDefined()) continue;
    if (std::string(key) == "absent" && row["absent"].IsDefined()) {
      for (size_t i = 0; v.IsSequence() && i < v.size(); ++i) row["absent"].push_back(v[i]);
      continue;
    }
    row[key] = v;
  }
  rows->At(pm.node().Mark().line + 1, "  - " + FlowRow(row));
  item->picks.push_back(std::move(pick));
}

std::optional<ValueType> TypeOf(core::YamlMap& m, const std::string& key) {
  auto t = m.String(key);
  if (!t) return std::nullopt;
  auto it = TypeNames().find(*t);
  if (it == TypeNames().end()) {
    m.errors().Add(m.Child(key), m.PathOf(key), "expected u8|u16|s16|u24|u32|s32|f32");
    return std::nullopt;
  }
  return it->second;
}

std::optional<Item> ParseItem(const YAML::Node& node, const std::string& path, Command* cmd,
                              RowWriter* rows, uint16_t* next_slot, core::YamlErrors& errors) {
  core::YamlMap im(node, path, errors);
  if (!im.valid()) return std::nullopt;
  Item item;
  item.line = node.Mark().line + 1;
  const int kinds = im.Has("type") + im.Has("skip") + im.Has("list");
  if (kinds != 1) {
    errors.Add(node, path, "an item is one of {type: T, ...}, {skip: N} or {list: T, ...}");
    return std::nullopt;
  }
  if (im.Has("skip")) {
    item.kind = Item::Kind::kSkip;
    item.skip = static_cast<size_t>(
        im.Integer("skip", true, 1, static_cast<long long>(kMaxInfoBytes)).value_or(1));
    im.String("note");
  } else if (im.Has("list")) {
    item.kind = Item::Kind::kList;
    item.type = TypeOf(im, "list").value_or(ValueType::kU8);
    im.String("note");
    YAML::Node points = im.Child("points");
    if (points.IsDefined() && !points.IsSequence())
      errors.Add(points, im.PathOf("points"), "expected a list");
    for (size_t i = 0; points.IsSequence() && i < points.size(); ++i) {
      core::YamlMap pm(points[i], im.PathOf("points") + "[" + std::to_string(i) + "]", errors);
      if (!pm.valid()) continue;
      auto index = pm.Integer("index", true, 0, 254);
      ParsePick(pm, item.type, &item, static_cast<size_t>(index.value_or(0)), cmd, rows, next_slot);
      pm.CheckNoUnknownKeys();
    }
  } else {
    item.kind = Item::Kind::kValue;
    item.type = TypeOf(im, "type").value_or(ValueType::kU8);
    if (im.Has("name")) {
      ParsePick(im, item.type, &item, 0, cmd, rows, next_slot);
    } else {
      im.String("note");
      for (const char* key : kValueKeys)
        if (im.Has(key) && std::string(key) != "note")
          errors.Add(im.Child(key), im.PathOf(key),
                     "an unmapped value (no name:) takes no " + std::string(key));
    }
  }
  im.CheckNoUnknownKeys();
  return item;
}

std::optional<std::vector<uint8_t>> HexBytes(const std::string& s) {
  if (s.size() % 2) return std::nullopt;
  std::vector<uint8_t> out;
  for (size_t i = 0; i < s.size(); i += 2) {
    unsigned v;
    if (!std::isxdigit(static_cast<unsigned char>(s[i])) ||
        !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
        std::sscanf(s.substr(i, 2).c_str(), "%2x", &v) != 1)
      return std::nullopt;
    out.push_back(static_cast<uint8_t>(v));
  }
  return out;
}

}  // namespace

size_t ValueBytes(ValueType t) {
  switch (t) {
    case ValueType::kU8:
      return 1;
    case ValueType::kU16:
    case ValueType::kS16:
      return 2;
    case ValueType::kU24:
      return 3;
    case ValueType::kU32:
    case ValueType::kS32:
    case ValueType::kF32:
      return 4;
  }
  return 1;
}

const char* ValueTypeName(ValueType t) {
  for (const auto& [name, type] : TypeNames())
    if (type == t) return name.c_str();
  return "?";
}

const Command* YdtMap::CommandAt(uint16_t address) const {
  for (const Command& c : commands)
    if (address >= c.base && address < c.base + kCommandStride) return &c;
  return nullptr;
}

core::Result<YdtMap> ParseYdtMap(const std::string& yaml, const std::string& source) {
  auto doc = core::LoadYamlString(yaml, source);
  if (!doc.ok()) return doc.status();
  core::YamlErrors errors(source);
  core::YamlMap root(*doc, "", errors);
  if (!root.valid()) return errors.ToStatus();
  YdtMap m;
  m.source = source;
  m.name = root.String("name", true).value_or("");
  root.String("description");
  root.String("source_document");
  if (auto proto = root.String("protocol", true); proto && *proto != "ydt1363")
    errors.Add(root.Child("protocol"), "protocol", "expected ydt1363");
  m.ver = static_cast<uint8_t>(root.Integer("ver", false, 0, 255).value_or(0x20));
  RowWriter rows(m.name);
  YAML::Node cmds = root.Child("commands", true);
  if (cmds.IsDefined() && (!cmds.IsSequence() || cmds.size() == 0 || cmds.size() > kMaxCommands))
    errors.Add(cmds, "commands", "expected a list of 1 to 255 commands");
  for (size_t k = 0; cmds.IsSequence() && k < cmds.size() && k < kMaxCommands; ++k) {
    const std::string path = "commands[" + std::to_string(k) + "]";
    core::YamlMap cm(cmds[k], path, errors);
    if (!cm.valid()) continue;
    Command c;
    c.line = cmds[k].Mark().line + 1;
    c.base = static_cast<uint16_t>(k * kCommandStride);
    c.name = cm.String("name", true).value_or("");
    c.cid1 = static_cast<uint8_t>(cm.Integer("cid1", true, 0, 255).value_or(0));
    c.cid2 = static_cast<uint8_t>(cm.Integer("cid2", true, 0, 255).value_or(0));
    if (auto info = cm.String("info")) {
      if (*info == "adr") {
        c.info_is_adr = true;
      } else if (auto bytes = HexBytes(*info)) {
        c.info = std::move(*bytes);
      } else {
        errors.Add(cm.Child("info"), cm.PathOf("info"),
                   "expected hex bytes (\"01\", \"FF\") or adr (the device's address)");
      }
    }
    cm.String("note");
    YAML::Node reply = cm.Child("reply", true);
    if (reply.IsDefined() && (!reply.IsSequence() || reply.size() == 0))
      errors.Add(reply, cm.PathOf("reply"), "expected a non-empty list of items");
    uint16_t next_slot = 0;
    for (size_t i = 0; reply.IsSequence() && i < reply.size(); ++i) {
      auto item = ParseItem(reply[i], cm.PathOf("reply") + "[" + std::to_string(i) + "]", &c, &rows,
                            &next_slot, errors);
      if (item) c.reply.push_back(std::move(*item));
    }
    // Leaves a gap to the next command, so reads never join two commands.
    if (next_slot > kCommandStride - 64)
      errors.Add(cmds[k], path, "more than 192 mapped registers in one command");
    c.words = next_slot;
    if (c.words == 0) errors.Add(cmds[k], path, "maps no point: drop the command");
    cm.CheckNoUnknownKeys();
    m.commands.push_back(std::move(c));
  }
  if (YAML::Node mains = root.Child("mains"); mains.IsDefined())
    rows.At(mains.Mark().line + 1, "mains: " + FlowRow(mains));
  root.CheckNoUnknownKeys();
  if (!errors.empty()) return errors.ToStatus();
  auto regs = modbus::ParseRegisterMap(rows.text(), source);
  if (!regs.ok()) return regs.status();
  m.registers = std::move(*regs);
  return m;
}

core::Status InfoToRegisters(const Command& c, std::span<const uint8_t> info,
                             std::vector<uint16_t>* out) {
  out->assign(c.words, 0);
  for (const Item& it : c.reply)
    for (const Item::Pick& p : it.picks) Put(out, p.slot, it.type, Sentinel(it.type));
  size_t pos = 0;
  for (size_t i = 0; i < c.reply.size(); ++i) {
    const Item& it = c.reply[i];
    if (pos >= info.size()) break;  // the rest was not sent: absent
    const size_t bytes = ValueBytes(it.type);
    switch (it.kind) {
      case Item::Kind::kSkip:
        pos += it.skip;
        break;
      case Item::Kind::kValue:
        if (pos + bytes > info.size())
          return core::Status::InvalidArgument(c.name + ": " + Describe(it, i) +
                                               " cut off at the end of INFO (" +
                                               std::to_string(info.size()) + " bytes)");
        if (!it.picks.empty()) Put(out, it.picks[0].slot, it.type, ReadRaw(it.type, &info[pos]));
        pos += bytes;
        break;
      case Item::Kind::kList: {
        const size_t n = info[pos++];
        if (pos + n * bytes > info.size())
          return core::Status::InvalidArgument(
              c.name + ": " + Describe(it, i) + ": " + std::to_string(n) +
              " elements run past the end of INFO (" + std::to_string(info.size()) + " bytes)");
        for (const Item::Pick& p : it.picks)
          if (p.index < n)
            Put(out, p.slot, it.type, ReadRaw(it.type, &info[pos + p.index * bytes]));
        pos += n * bytes;
        break;
      }
    }
  }
  return core::Status::Ok();
}

std::vector<uint8_t> RegistersToInfo(const Command& c, std::span<const uint16_t> words) {
  std::vector<uint8_t> info;
  for (const Item& it : c.reply) {
    switch (it.kind) {
      case Item::Kind::kSkip:
        info.insert(info.end(), it.skip, 0);
        break;
      case Item::Kind::kValue:
        WriteRaw(it.type, it.picks.empty() ? 0 : Get(words, it.picks[0].slot, it.type), &info);
        break;
      case Item::Kind::kList: {
        size_t n = 0;
        for (const Item::Pick& p : it.picks) n = std::max(n, p.index + 1);
        info.push_back(static_cast<uint8_t>(n));
        for (size_t e = 0; e < n; ++e) {
          uint32_t raw = 0;
          for (const Item::Pick& p : it.picks)
            if (p.index == e) raw = Get(words, p.slot, it.type);
          WriteRaw(it.type, raw, &info);
        }
        break;
      }
    }
  }
  return info;
}

const YdtMap* YdtMapRegistry::Find(const std::string& name) const {
  auto it = maps_.find(name);
  return it == maps_.end() ? nullptr : &it->second;
}

std::vector<std::string> YdtMapRegistry::Names() const {
  std::vector<std::string> out;
  for (const auto& [n, m] : maps_) out.push_back(n);
  return out;
}

void YdtMapRegistry::Add(YdtMap map) {
  std::string name = map.name;
  maps_[name] = std::move(map);
}

void YdtMapRegistry::ExportTo(modbus::MapRegistry* registry) const {
  for (const auto& [name, m] : maps_) registry->Add(m.registers);
}

core::Result<YdtMapRegistry> YdtMapRegistry::Load(const std::string& extra_dir) {
  YdtMapRegistry reg;
  for (const auto& [file, text] : BuiltinYdtMaps()) {
    auto m = ParseYdtMap(text, "builtin:" + file);
    if (!m.ok()) return m.status();
    reg.Add(std::move(*m));
  }
  if (extra_dir.empty()) return reg;
  std::error_code ec;
  if (!std::filesystem::is_directory(extra_dir, ec))
    return core::Status::NotFound("ydt maps dir " + extra_dir + ": not a directory");
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(extra_dir, ec))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::string all_errors;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    auto m = ParseYdtMap(ss.str(), f.string());
    if (!m.ok()) {
      all_errors += (all_errors.empty() ? "" : "\n") + m.status().message();
      continue;
    }
    reg.Add(std::move(*m));
  }
  if (!all_errors.empty()) return core::Status::InvalidArgument(all_errors);
  return reg;
}

}  // namespace sitepower::ydt1363
