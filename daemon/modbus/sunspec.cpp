#include "modbus/sunspec.hpp"

#include <algorithm>

#include <cstdio>

namespace sitepower::modbus {

const std::vector<uint16_t>& SunSpecProbeAddresses() {
  // The three standard bases first, then +-1 for devices (or maps) that mix
  // 0-based PDU and 1-based "40001-style" addressing.
  static const std::vector<uint16_t> kProbes = {40000, 0, 50000, 39999, 40001, 1, 49999, 50001};
  return kProbes;
}

const SunSpecModel* SunSpecChain::Find(uint16_t id) const {
  for (const auto& m : models)
    if (m.id == id) return &m;
  return nullptr;
}

std::string SunSpecChain::ToString() const {
  std::string s = "SunS@" + std::to_string(marker) + ":";
  for (const auto& m : models)
    s += " " + std::to_string(m.id) + "@" + std::to_string(m.address) + "(" +
         std::to_string(m.length) + ")";
  return s;
}

SunSpecWalker::SunSpecWalker() = default;

std::optional<ReadBlock> SunSpecWalker::Next() const {
  if (done_ || !error_.ok()) return std::nullopt;
  uint16_t addr = probing_ ? SunSpecProbeAddresses()[probe_] : cursor_;
  return ReadBlock{Function::kReadHoldingRegisters, addr, 2};
}

void SunSpecWalker::Fail(std::string why) {
  error_ = core::Status::FailedPrecondition(std::move(why));
}

void SunSpecWalker::Feed(std::span<const uint16_t> words) {
  if (done_ || !error_.ok()) return;
  const uint16_t at = Next()->address;
  if (words.size() < 2) return Fail("SunSpec: short answer at register " + std::to_string(at));
  if (probing_) {
    if (words[0] == kSunSpecMarkerHi && words[1] == kSunSpecMarkerLo) {
      probing_ = false;
      chain_.marker = at;
      cursor_ = static_cast<uint16_t>(at + 2);
      return;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%u: 0x%04X 0x%04X", at, words[0], words[1]);
    misses_.push_back(buf);
    FeedException("");  // same as a miss: try the next candidate
    return;
  }
  const uint16_t id = words[0], length = words[1];
  if (id == kSunSpecEndOfChain) {
    done_ = true;
    return;
  }
  if (id == 0 || static_cast<int>(chain_.models.size()) >= kSunSpecMaxModels ||
      static_cast<int>(at) + 2 + length > 0xFFFF)
    return Fail("SunSpec chain from " + std::to_string(chain_.marker) + " broken at register " +
                std::to_string(at) + " (model " + std::to_string(id) + ", length " +
                std::to_string(length) + ")");
  chain_.models.push_back(SunSpecModel{id, at, length});
  cursor_ = static_cast<uint16_t>(at + 2 + length);
}

void SunSpecWalker::FeedException(const std::string& why) {
  if (done_ || !error_.ok()) return;
  if (probing_) {
    if (!why.empty())
      misses_.push_back(std::to_string(SunSpecProbeAddresses()[probe_]) + ": " + why);
    if (++probe_ < SunSpecProbeAddresses().size()) return;
    std::string all;
    for (const auto& m : misses_) all += (all.empty() ? "" : "; ") + m;
    return Fail("no SunSpec \"SunS\" marker (" + all + ")");
  }
  // Some devices end the chain by refusing the read past the last model.
  if (!chain_.models.empty()) {
    done_ = true;
    return;
  }
  Fail("SunSpec chain from " + std::to_string(chain_.marker) + ": " + why);
}

core::Result<RegisterMap> RelocateToChain(const RegisterMap& map, const SunSpecChain& chain) {
  if (!map.sunspec_model) return map;
  const SunSpecModel* model = chain.Find(map.sunspec_model);
  if (!model)
    return core::Status::FailedPrecondition("map " + map.name + ": no SunSpec model " +
                                            std::to_string(map.sunspec_model) + " in " +
                                            chain.ToString());
  const int nominal = map.sunspec_model_address;
  const int nominal_end = nominal + 2 + map.sunspec_model_length;  // exclusive
  const int device_end = nominal + 2 + model->length;
  const int delta = static_cast<int>(model->address) - nominal;
  RegisterMap out = map;
  std::string errors;
  auto move = [&](uint16_t& addr, int words, const std::string& what) {
    if (addr < nominal || addr >= nominal_end) return;  // outside the model: vendor extension
    if (addr + words > device_end) {
      errors += (errors.empty() ? "" : "; ") + what + " at register " + std::to_string(addr) +
                " is past this device's model " + std::to_string(model->id) + " (length " +
                std::to_string(model->length) + ")";
      return;
    }
    addr = static_cast<uint16_t>(addr + delta);
  };
  for (auto& p : out.points) {
    if (p.fc != Function::kReadHoldingRegisters) continue;
    move(p.address,
         (p.type == ValueType::kU32 || p.type == ValueType::kS32 || p.type == ValueType::kF32) ? 2
                                                                                               : 1,
         p.name);
    if (p.scale_sf) move(*p.scale_sf, 1, p.name + " scale factor");
  }
  if (!errors.empty())
    return core::Status::FailedPrecondition("map " + map.name + " vs " + chain.ToString() + ": " +
                                            errors);
  out.blocks = CoalesceReads(out);
  return out;
}

namespace {

std::string SunSpecString(std::span<const uint16_t> words) {
  std::string out;
  for (uint16_t w : words)
    for (int shift : {8, 0}) {
      const auto c = static_cast<unsigned char>((w >> shift) & 0xFF);
      out += c == 0 ? '\0' : (c >= 0x20 && c < 0x7F ? static_cast<char>(c) : '?');
    }
  out.erase(std::find(out.begin(), out.end(), '\0'), out.end());  // NUL-padded
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

std::string DeviceIdentity::ToString() const {
  std::string s;
  for (const std::string* part : {&manufacturer, &model, &version})
    if (!part->empty()) s += (s.empty() ? "" : " ") + *part;
  if (!serial.empty()) s += (s.empty() ? "serial " : " serial ") + serial;
  return s;
}

core::Result<DeviceIdentity> DecodeCommonModel(std::span<const uint16_t> body) {
  if (body.size() < kCommonModelMinLength)
    return core::Status::InvalidArgument("SunSpec model 1 body has " + std::to_string(body.size()) +
                                         " registers, needs " +
                                         std::to_string(kCommonModelMinLength));
  DeviceIdentity id;
  id.manufacturer = SunSpecString(body.subspan(0, 16));
  id.model = SunSpecString(body.subspan(16, 16));
  id.options = SunSpecString(body.subspan(32, 8));
  id.version = SunSpecString(body.subspan(40, 8));
  id.serial = SunSpecString(body.subspan(48, 16));
  return id;
}

}  // namespace sitepower::modbus
