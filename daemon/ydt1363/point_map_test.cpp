#include "ydt1363/point_map.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include "modbus/map_image.hpp"
#include "ydt1363/frame.hpp"

namespace sitepower::ydt1363 {
namespace {

using modbus::Quality;
using modbus::Reading;

const YdtMap& Builtin(const std::string& name) {
  static const YdtMapRegistry reg = [] {
    auto r = YdtMapRegistry::Load("");
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? std::move(*r) : YdtMapRegistry();
  }();
  const YdtMap* m = reg.Find(name);
  EXPECT_NE(m, nullptr) << name;
  static const YdtMap kEmpty;
  return m ? *m : kEmpty;
}

// What the poller does with one poll's replies: each block's words out of
// its command's virtual registers, then the shared Modbus decoding.
Reading Decode(const YdtMap& m, const std::vector<std::vector<uint8_t>>& infos) {
  std::vector<std::vector<uint16_t>> data;
  for (const modbus::ReadBlock& b : m.registers.blocks) {
    const Command* c = m.CommandAt(b.address);
    EXPECT_NE(c, nullptr);
    const size_t k = static_cast<size_t>(c - m.commands.data());
    std::vector<uint16_t> regs;
    auto st = InfoToRegisters(*c, infos.at(k), &regs);
    EXPECT_TRUE(st.ok()) << st.message();
    const size_t from = b.address - c->base;
    data.emplace_back(regs.begin() + from, regs.begin() + from + b.count);
  }
  std::vector<std::string> problems;
  Reading r = modbus::DecodeReading(m.registers, data, core::TimePoint{}, &problems);
  for (const auto& p : problems) ADD_FAILURE() << p;
  return r;
}

std::vector<uint8_t> InfoOf(const std::string& frame) {
  auto f = DecodeFrame(std::vector<uint8_t>(frame.begin(), frame.end()));
  EXPECT_TRUE(f.ok()) << f.status().message();
  return f.ok() ? f->info : std::vector<uint8_t>{};
}

void AppendF32(std::vector<uint8_t>* out, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  for (int s : {0, 8, 16, 24}) out->push_back(static_cast<uint8_t>(bits >> s));
}

TEST(YdtPointMap, BuiltinsLoadAndBecomeRegisterMaps) {
  auto reg = YdtMapRegistry::Load("");
  ASSERT_TRUE(reg.ok()) << reg.status().message();
  EXPECT_EQ(reg->Names(), (std::vector<std::string>{"ydt-dc-power", "ydt-pylontech-lfp"}));
  modbus::MapRegistry maps;
  reg->ExportTo(&maps);
  ASSERT_TRUE(maps.Has("ydt-dc-power"));
  const YdtMap& dc = Builtin("ydt-dc-power");
  // One read per command, each inside its command.
  ASSERT_EQ(dc.registers.blocks.size(), 3u);
  for (size_t k = 0; k < 3; ++k)
    EXPECT_EQ(dc.CommandAt(dc.registers.blocks[k].address), &dc.commands[k]);
  EXPECT_TRUE(dc.registers.mains.has_value());
}

// A map for packs that send only the 16-bit capacities (the Pylontech
// manual's example): the built-in reads the 24-bit ones.
constexpr char kSixteenBitPack[] = R"(name: pack16
protocol: ydt1363
commands:
  - name: analog
    cid1: 0x46
    cid2: 0x42
    info: adr
    reply:
      - {skip: 2}
      - {list: u16}
      - list: s16
        points: [{index: 1, name: battery_temp_c, scale: 0.1, offset: -273.1}]
      - {type: s16, name: battery_current_a, scale: 0.1, invert: true}
      - {type: u16, name: battery_voltage_v, scale: 0.001}
      - {type: u16, name: remaining_ah, scale: 0.001}
)";

// Pylontech manual section 5 example (Interster/PylonTechBattery README.md):
// 15 cells, temperatures 0x0BC3 (28.0 C) x3 and 0x0BCD x2, current 0,
// 0xC725 = 50.981 V, remaining 0xBF68 = 49.000 Ah, user-defined count 2.
TEST(YdtPointMap, PylontechManualExample) {
  const std::string reply =
      "~20014600C06E11010F0D450D440D450D440D450D440D3E0D450D4A0D4A0D4B0D4A0D4A0D4A0D4A050BC30BC30B"
      "C30BCD0BCD0000C725BF6802C3500002E553\r";
  Reading r = Decode(Builtin("ydt-pylontech-lfp"), {InfoOf(reply)});
  EXPECT_NEAR(r.battery_voltage_v.value, 50.981, 1e-9);
  EXPECT_EQ(r.battery_current_a.quality, Quality::kGood);
  EXPECT_NEAR(r.battery_current_a.value, 0.0, 1e-9);
  EXPECT_NEAR(r.battery_temp_c.value, 28.0, 1e-9);
  EXPECT_EQ(r.remaining_ah.quality, Quality::kAbsent);  // no 24-bit items sent
  EXPECT_EQ(r.mains_ok.quality, Quality::kAbsent);      // a pack knows nothing of mains
  auto m = ParseYdtMap(kSixteenBitPack, "pack16.yaml");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_NEAR(Decode(*m, {InfoOf(reply)}).remaining_ah.value, 49.0, 1e-9);
}

// Frankkkkk/python-pylontech tests/test_basic.py test_up2500_1module_status_
// info_parsing_1: 26.638 V, -0.6 A (theirs: + = charging), 19.0 C in the first
// cell group, remaining 95.460 Ah in the 24-bit field (0xFFFF in the 16-bit).
TEST(YdtPointMap, Up2500WithTwentyFourBitCapacity) {
  const std::string reply =
      "~20024600D05E1002080D020D020D020D030D000D010D010D03050B7D0B690B690B690B73FFFA680EFFFF04FFFF"
      "00000174E401B198E906\r";
  Reading r = Decode(Builtin("ydt-pylontech-lfp"), {InfoOf(reply)});
  EXPECT_NEAR(r.battery_voltage_v.value, 26.638, 1e-9);
  EXPECT_NEAR(r.battery_current_a.value, 0.6, 1e-9);
  EXPECT_NEAR(r.battery_temp_c.value, 19.0, 1e-9);
  EXPECT_NEAR(r.remaining_ah.value, 95.46, 1e-9);
  // The 16-bit map: 0xFFFF is the not-available value, absent.
  auto m = ParseYdtMap(kSixteenBitPack, "pack16.yaml");
  ASSERT_TRUE(m.ok()) << m.status().message();
  Reading b = Decode(*m, {InfoOf(reply)});
  EXPECT_EQ(b.remaining_ah.quality, Quality::kAbsent);
  EXPECT_NEAR(b.battery_voltage_v.value, 26.638, 1e-9);
}

// A DC power system's replies laid out as the MU4801 simulator sends them
// (stvliu/thingsboard-gateway mu4801_models.py), floats least significant
// byte first.
TEST(YdtPointMap, DcPowerSystemFromHandBuiltReplies) {
  std::vector<uint8_t> ac = {0x00, 0x01};
  for (float v : {0.0f, 0.0f, 0.0f, 50.0f}) AppendF32(&ac, v);  // mains lost
  std::vector<uint8_t> dc = {0x00, 0x01};
  AppendF32(&dc, 48.25f);  // DC output voltage
  AppendF32(&dc, 20.5f);   // load
  dc.push_back(1);
  AppendF32(&dc, -20.5f);  // battery group 1 discharging
  dc.push_back(0);         // no branch currents
  dc.push_back(10);
  for (int i = 0; i < 10; ++i) AppendF32(&dc, i == 1 ? 62.0f : i == 9 ? 31.5f : 0.0f);
  std::vector<uint8_t> alarm = {0x00, 0x00, 0x00, 29};
  for (int i = 0; i < 29; ++i) alarm.push_back(i == 27 ? 2 : 0);  // BLVD off
  Reading r = Decode(Builtin("ydt-dc-power"), {ac, dc, alarm});
  EXPECT_EQ(r.mains_ok.quality, Quality::kGood);
  EXPECT_EQ(r.mains_ok.value, 0.0);
  EXPECT_NEAR(r.battery_voltage_v.value, 48.25, 1e-6);
  EXPECT_NEAR(r.battery_current_a.value, 20.5, 1e-6);  // + = discharging
  EXPECT_NEAR(r.soc_pct.value, 62.0, 1e-6);
  EXPECT_NEAR(r.battery_temp_c.value, 31.5, 1e-6);
  EXPECT_EQ(r.lvd_open.value, 1.0);
  // Mains back on phase 1 only, BLVD reconnected.
  std::vector<uint8_t> ac_ok = {0x00, 0x01};
  for (float v : {231.0f, 0.0f, 0.0f, 50.0f}) AppendF32(&ac_ok, v);
  alarm[4 + 27] = 0;
  r = Decode(Builtin("ydt-dc-power"), {ac_ok, dc, alarm});
  EXPECT_EQ(r.mains_ok.value, 1.0);
  EXPECT_EQ(r.lvd_open.value, 0.0);
}

TEST(YdtPointMap, ShortRepliesAreAbsentOrNamedErrors) {
  const YdtMap& dc = Builtin("ydt-dc-power");
  const Command& analog = dc.commands[1];
  std::vector<uint16_t> regs;
  // Only DATAFLAG and the panel count: every point absent, no error.
  ASSERT_TRUE(InfoToRegisters(analog, std::vector<uint8_t>{0, 1}, &regs).ok());
  Reading r = Decode(dc, {{0, 1}, {0, 1}, {0, 0}});
  EXPECT_EQ(r.battery_voltage_v.quality, Quality::kAbsent);
  EXPECT_EQ(r.lvd_open.quality, Quality::kAbsent);  // a bit of a byte never sent
  EXPECT_EQ(r.mains_ok.quality, Quality::kAbsent);
  // A float cut in half.
  auto st = InfoToRegisters(analog, std::vector<uint8_t>{0, 1, 0x00, 0x00}, &regs);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("dc_analog: item 1 (f32, line"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("cut off at the end of INFO (4 bytes)"), std::string::npos);
  // A list count larger than the reply.
  std::vector<uint8_t> info = {0, 1};
  AppendF32(&info, 53.5f);
  AppendF32(&info, 10.0f);
  info.push_back(200);
  st = InfoToRegisters(analog, info, &regs);
  EXPECT_NE(st.message().find("list of f32"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("200 elements run past the end of INFO (11 bytes)"),
            std::string::npos);
}

TEST(YdtPointMap, EveryBuiltinRoundTripsThroughASimulatedImage) {
  for (const std::string name : {"ydt-dc-power", "ydt-pylontech-lfp"}) {
    const YdtMap& m = Builtin(name);
    modbus::CanonicalValues v;
    v.battery_voltage_v = 51.2;
    v.battery_current_a = 35.5;
    v.battery_temp_c = 27.0;
    v.remaining_ah = 40.0;
    if (name == "ydt-dc-power") {
      v.soc_pct = 55.0;
      v.mains_ok = false;
      v.lvd_open = false;
      v.remaining_ah.reset();
    }
    auto image = modbus::EncodeImage(m.registers, v);
    ASSERT_TRUE(image.ok()) << name << ": " << image.status().message();
    std::vector<std::vector<uint8_t>> infos;
    for (const Command& c : m.commands) {
      std::vector<uint16_t> words(c.words);
      for (uint16_t i = 0; i < c.words; ++i)
        words[i] = image->Get(modbus::Function::kReadHoldingRegisters, c.base + i).value_or(0);
      infos.push_back(RegistersToInfo(c, words));
    }
    Reading r = Decode(m, infos);
    EXPECT_NEAR(r.battery_voltage_v.value, 51.2, 1e-3) << name;
    EXPECT_NEAR(r.battery_current_a.value, 35.5, 1e-3) << name;
    EXPECT_NEAR(r.battery_temp_c.value, 27.0, 1e-3) << name;
    if (name == "ydt-dc-power") {
      EXPECT_EQ(r.mains_ok.value, 0.0);
      EXPECT_EQ(r.lvd_open.value, 0.0);
      EXPECT_NEAR(r.soc_pct.value, 55.0, 1e-3);
    } else {
      EXPECT_NEAR(r.remaining_ah.value, 40.0, 1e-3);
    }
  }
}

TEST(YdtPointMap, ErrorsNameFileLineAndKey) {
  auto err = [](const std::string& yaml) {
    auto m = ParseYdtMap(yaml, "x.yaml");
    EXPECT_FALSE(m.ok()) << yaml;
    return m.ok() ? std::string() : m.status().message();
  };
  const std::string head =
      "name: x\nprotocol: ydt1363\ncommands:\n  - name: a\n    cid1: 0x42\n    cid2: 0x41\n"
      "    reply:\n";
  EXPECT_NE(err(head + "      - {type: f16, name: battery_voltage_v}\n")
                .find("x.yaml:8: commands[0].reply[0].type: expected u8|u16"),
            std::string::npos);
  EXPECT_NE(
      err(head + "      - {skip: 2}\n      - {type: f32, name: battery_volts}\n").find("x.yaml:9:"),
      std::string::npos);
  EXPECT_NE(err(head + "      - {skip: 2}\n      - {type: f32, name: battery_volts}\n")
                .find("unknown point 'battery_volts'"),
            std::string::npos);
  // A value key checked by the register-map parser still names the line.
  const std::string scale0 = err(head +
                                 "      - {skip: 1}\n      - {type: u16, name: soc_pct, "
                                 "scale: 0}\n");
  EXPECT_NE(scale0.find("x.yaml:9:"), std::string::npos) << scale0;
  EXPECT_NE(scale0.find("scale 0"), std::string::npos) << scale0;
  EXPECT_NE(err(head + "      - {type: u8, skip: 1}\n").find("an item is one of"),
            std::string::npos);
  EXPECT_NE(err(head + "      - {skip: 1}\n").find("maps no point"), std::string::npos);
  EXPECT_NE(err("name: x\nprotocol: modbus\ncommands: []\n").find("expected ydt1363"),
            std::string::npos);
  EXPECT_NE(err(head + "      - {type: u8, scale: 2}\n").find("takes no scale"), std::string::npos);
}

}  // namespace
}  // namespace sitepower::ydt1363
