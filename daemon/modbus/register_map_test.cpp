#include "modbus/register_map.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace sitepower::modbus {
namespace {

const char* kMap = R"(name: test
address_base: 1
points:
  - {name: battery_voltage_v, fc: 4, address: 1, type: u16, scale: 0.01, min: 0, max: 100}
  - {name: battery_current_a, fc: 4, address: 2, type: s16, scale: 0.1, invert: true}
  - {name: remaining_ah, fc: 4, address: 3, type: u32, word_order: low_first}
  - {name: soc_pct, fc: 4, address: 5, type: f32}
  - {name: alarms, fc: 4, address: 7, type: s32}
  - {name: battery_temp_c, fc: 4, address: 9, type: u16}
  - {name: mains_ok, fc: 2, address: 1, type: bit, invert: true}
)";

TEST(RegisterMapTest, DecodesEveryTypeWordOrderSignAndScale) {
  auto m = ParseRegisterMap(kMap, "test.yaml");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->blocks.size(), 2u);     // one FC2 read, one FC4 read (coalesced)
  EXPECT_EQ(m->points[0].address, 0);  // 1-based map -> PDU address 0
  float soc = 87.5f;
  uint32_t soc_bits;
  std::memcpy(&soc_bits, &soc, 4);
  std::vector<std::vector<uint16_t>> data(2);
  for (size_t b = 0; b < m->blocks.size(); ++b) {
    if (m->blocks[b].fc == Function::kReadDiscreteInputs)
      data[b] = {0};
    else
      data[b] = {
          4810,                                               // 48.10 V
          static_cast<uint16_t>(static_cast<int16_t>(-523)),  // -52.3 A on the wire = charging
          0x5678,
          0x0001,  // low word first: 0x00015678
          static_cast<uint16_t>(soc_bits >> 16),
          static_cast<uint16_t>(soc_bits & 0xFFFF),
          0xFFFF,
          0xFFFE,   // s32 -2
          0xFFFF};  // u16 sentinel: absent
  }
  std::vector<std::string> problems;
  Reading r = DecodeReading(*m, data, core::TimePoint{}, &problems);
  EXPECT_NEAR(r.battery_voltage_v.value, 48.10, 1e-9);
  EXPECT_NEAR(r.battery_current_a.value, 52.3, 1e-9);  // inverted: + = discharge
  EXPECT_DOUBLE_EQ(r.remaining_ah.value, 0x00015678);
  EXPECT_FLOAT_EQ(static_cast<float>(r.soc_pct.value), 87.5f);
  EXPECT_DOUBLE_EQ(r.alarms.value, -2);
  EXPECT_EQ(r.battery_temp_c.quality, Quality::kAbsent);  // not-implemented sentinel
  EXPECT_EQ(r.mains_ok.value, 1);                         // inverted bit
  EXPECT_TRUE(problems.empty());
}

TEST(RegisterMapTest, ImplausibleValuesAreAbsentAndReported) {
  auto m = ParseRegisterMap(kMap, "test.yaml");
  std::vector<std::vector<uint16_t>> data(2);
  for (size_t b = 0; b < m->blocks.size(); ++b)
    data[b] = m->blocks[b].fc == Function::kReadDiscreteInputs ? std::vector<uint16_t>{1}
                                                               : std::vector<uint16_t>(9, 0x7000);
  std::vector<std::string> problems;
  Reading r = DecodeReading(*m, data, core::TimePoint{}, &problems);
  EXPECT_EQ(r.battery_voltage_v.quality, Quality::kAbsent);  // 286.72 V > 100
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems[0].find("battery_voltage_v"), std::string::npos);
}

TEST(RegisterMapTest, SunSpecScaleFactorsAndSentinels) {
  auto reg = MapRegistry::Load("");
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  const RegisterMap* m = reg->Find("sunspec-802");
  ASSERT_NE(m, nullptr);
  std::vector<std::vector<uint16_t>> data;
  for (const auto& b : m->blocks) {
    std::vector<uint16_t> d(b.count, 0xFFFF);
    auto set = [&b, &d](uint16_t addr, uint16_t v) {
      if (addr >= b.address && addr < b.address + b.count) d[addr - b.address] = v;
    };
    if (b.fc == Function::kReadHoldingRegisters) {
      set(40104, 4812);                                               // V
      set(40129, static_cast<uint16_t>(-2));                          // V_SF
      set(40114, static_cast<uint16_t>(static_cast<int16_t>(-512)));  // A, + = charging
      set(40131, static_cast<uint16_t>(-1));                          // A_SF
      set(40081, 77);                                                 // SoC
      set(40126, 0x8000);                                             // SoC_SF not implemented
    } else {
      d.assign(b.count, 0);
    }
    data.push_back(d);
  }
  Reading r = DecodeReading(*m, data, core::TimePoint{}, nullptr);
  EXPECT_NEAR(r.battery_voltage_v.value, 48.12, 1e-9);
  EXPECT_NEAR(r.battery_current_a.value, 51.2, 1e-9);
  EXPECT_EQ(r.soc_pct.quality, Quality::kAbsent);  // its scale factor is a sentinel
  EXPECT_EQ(r.mains_ok.value, 0);
}

TEST(RegisterMapTest, BadMapsNameFileLineAndKey) {
  auto m = ParseRegisterMap(
      "name: bad\npoints:\n  - {name: battery_voltage_v, fc: 3, address: 1, type: u64}\n"
      "  - {name: flux, fc: 3, address: 2}\n  - {name: mains_ok, fc: 3, address: 3, type: bit}\n",
      "bad.yaml");
  ASSERT_FALSE(m.ok());
  const std::string& e = m.status().message();
  EXPECT_NE(e.find("bad.yaml:3: points[0].type: expected u16|s16|u32|s32|f32|bit"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("bad.yaml:4: points[1].name: unknown point 'flux'"), std::string::npos) << e;
  EXPECT_NE(e.find("points[2]: type bit goes with fc 1 or 2"), std::string::npos) << e;
}

}  // namespace
}  // namespace sitepower::modbus
