#include "modbus/register_map.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <map>

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
  EXPECT_EQ(r.soc_pct.quality, Quality::kAbsent);   // its scale factor is a sentinel
  EXPECT_EQ(r.mains_ok.quality, Quality::kAbsent);  // standard 802: no mains point
  EXPECT_EQ(r.mains_lost_above_discharge_a, 1.0);   // the map's rule: from the current
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
  EXPECT_NE(e.find("bad.yaml:5: points[2]: type bit on fc 3 or 4 needs bit: 0-15"),
            std::string::npos)
      << e;
}

// Decodes one map against sparse registers: {fc, address} -> word; anything
// the map reads that is not listed reads as `fill`.
Reading Decode(const RegisterMap& m, const std::map<std::pair<Function, uint16_t>, uint16_t>& regs,
               uint16_t fill = 0, std::vector<std::string>* problems = nullptr) {
  std::vector<std::vector<uint16_t>> data;
  for (const auto& b : m.blocks) {
    std::vector<uint16_t> d(b.count, fill);
    for (uint16_t i = 0; i < b.count; ++i)
      if (auto it = regs.find({b.fc, static_cast<uint16_t>(b.address + i)}); it != regs.end())
        d[i] = it->second;
    data.push_back(d);
  }
  return DecodeReading(m, data, core::TimePoint{}, problems);
}

constexpr Function kHr = Function::kReadHoldingRegisters;
constexpr Function kIr = Function::kReadInputRegisters;
constexpr Function kDi = Function::kReadDiscreteInputs;

TEST(RegisterMapTest, ModiconAddressesPickTheFunctionCodesRange) {
  auto m = ParseRegisterMap(R"(name: t
address_base: modicon
points:
  - {name: battery_voltage_v, fc: 4, address: 30001, type: u16}
  - {name: soc_pct, fc: 3, address: 40010, type: u16, scale_sf: 40011}
  - {name: mains_ok, fc: 2, address: 10001}
  - {name: lvd_open, fc: 1, address: 7}
)",
                            "t.yaml");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->points[0].address, 0);
  EXPECT_EQ(m->points[1].address, 9);
  EXPECT_EQ(m->points[1].scale_sf, 10);
  EXPECT_EQ(m->points[2].address, 0);
  EXPECT_EQ(m->points[3].address, 6);
  auto bad = ParseRegisterMap(
      "name: t\naddress_base: modicon\npoints:\n"
      "  - {name: battery_voltage_v, fc: 4, address: 40001}\n",
      "bad.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad.yaml:4: points[0].address: address 40001 is not a "
                                        "fc 4 reference (30001-39999"),
            std::string::npos)
      << bad.status().message();
  auto base = ParseRegisterMap("name: t\naddress_base: 2\npoints: []\n", "b.yaml");
  ASSERT_FALSE(base.ok());
  EXPECT_NE(base.status().message().find("b.yaml:2: address_base: expected 0, 1 or modicon"),
            std::string::npos)
      << base.status().message();
}

TEST(RegisterMapTest, BitsInsideStatusWords) {
  auto m = ParseRegisterMap(R"(name: t
points:
  - {name: lvd_open, fc: 3, address: 10, type: bit, bit: 5}
  - {name: generator_running, fc: 3, address: 10, type: bit, bit: 0}
  - {name: mains_ok, fc: 4, address: 3, type: bit, bit: 15, invert: true}
  - {name: alarms, fc: 3, address: 10, type: u16}
)",
                            "t.yaml");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  // 0x0020: bit 5 set, bit 0 clear; input register 3 bit 15 set = AC fail alarm.
  Reading r = Decode(*m, {{{kHr, 10}, 0x0020}, {{kIr, 3}, 0x8000}});
  EXPECT_EQ(r.lvd_open.value, 1);
  EXPECT_EQ(r.generator_running.value, 0);
  EXPECT_EQ(r.mains_ok.value, 0);  // alarm bit set, inverted
  EXPECT_EQ(r.alarms.value, 0x20);
  r = Decode(*m, {{{kHr, 10}, 0xFFDF}, {{kIr, 3}, 0x7FFF}});
  EXPECT_EQ(r.lvd_open.value, 0);
  EXPECT_EQ(r.generator_running.value, 1);
  EXPECT_EQ(r.mains_ok.value, 1);
  EXPECT_EQ(r.lvd_open.quality, Quality::kGood);  // no type sentinel for bits
}

TEST(RegisterMapTest, OffsetAndListedNotAvailableValues) {
  auto m = ParseRegisterMap(R"(name: t
points:
  - {name: battery_temp_c, fc: 3, address: 1, type: s16, scale: 0.5, offset: -40, absent: [0x7FFF, -999]}
  - {name: remaining_ah, fc: 3, address: 2, type: u32, word_order: low_first, absent: [0], scale: 0.1}
  - {name: lvd_v, fc: 3, address: 4, type: u16, scale: 0.01, offset: 0.5, invert: true}
)",
                            "t.yaml");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  Reading r =
      Decode(*m, {{{kHr, 1}, 130}, {{kHr, 2}, 0x86A0}, {{kHr, 3}, 0x0001}, {{kHr, 4}, 4270}});
  EXPECT_NEAR(r.battery_temp_c.value, 25.0, 1e-9);   // 130 x 0.5 - 40
  EXPECT_NEAR(r.remaining_ah.value, 10000.0, 1e-9);  // 0x000186A0 = 100000 x 0.1
  EXPECT_NEAR(r.lvd_v.value, -43.2, 1e-9);           // -(4270 x 0.01 + 0.5)
  r = Decode(*m, {{{kHr, 1}, 0x7FFF}, {{kHr, 2}, 0}, {{kHr, 3}, 0}});
  EXPECT_EQ(r.battery_temp_c.quality, Quality::kAbsent);
  EXPECT_EQ(r.remaining_ah.quality, Quality::kAbsent);  // 32-bit listed value 0
  r = Decode(*m, {{{kHr, 1}, static_cast<uint16_t>(-999)}});
  EXPECT_EQ(r.battery_temp_c.quality, Quality::kAbsent);  // negative entries are s16 words
  r = Decode(*m, {{{kHr, 1}, static_cast<uint16_t>(-1000)}});
  EXPECT_NEAR(r.battery_temp_c.value, -540.0, 1e-9);  // not listed: a number
}

TEST(RegisterMapTest, EnumRegistersReadAsFlags) {
  auto m = ParseRegisterMap(R"(name: t
points:
  - {name: mains_ok, fc: 3, address: 826, type: s16, one_of: [1, 3], absent: [0]}
  - {name: generator_running, fc: 3, address: 826, type: s16, one_of: [2], absent: [0]}
  - {name: lvd_open, fc: 3, address: 827, type: u16, one_of: [5], invert: true}
)",
                            "t.yaml");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  struct Case {
    uint16_t source, lvd;
    double mains, gen, open;
  };
  for (Case c :
       {Case{1, 5, 1, 0, 0}, Case{3, 4, 1, 0, 1}, Case{2, 5, 0, 1, 0}, Case{240, 0, 0, 0, 1}}) {
    Reading r = Decode(*m, {{{kHr, 826}, c.source}, {{kHr, 827}, c.lvd}});
    EXPECT_EQ(r.mains_ok.value, c.mains) << c.source;
    EXPECT_EQ(r.generator_running.value, c.gen) << c.source;
    EXPECT_EQ(r.lvd_open.value, c.open) << c.lvd;
  }
  Reading r = Decode(*m, {{{kHr, 826}, 0}, {{kHr, 827}, 0xFFFF}});
  EXPECT_EQ(r.mains_ok.quality, Quality::kAbsent);
  EXPECT_EQ(r.generator_running.quality, Quality::kAbsent);
  EXPECT_EQ(r.lvd_open.quality, Quality::kAbsent);  // the u16 sentinel
}

TEST(RegisterMapTest, MainsFromAcVoltageAnyOrAllPhases) {
  const std::string points = R"(points:
  - {name: ac_voltage_v, fc: 3, address: 0, type: u16, scale: 0.1}
  - {name: ac_voltage_l2_v, fc: 3, address: 1, type: u16, scale: 0.1}
  - {name: ac_voltage_l3_v, fc: 3, address: 2, type: u16, scale: 0.1}
)";
  auto any = ParseRegisterMap(
      "name: any\n" + points +
          "mains: {from: [ac_voltage_v, ac_voltage_l2_v, ac_voltage_l3_v], ok_above_v: 180}\n",
      "any.yaml");
  auto all = ParseRegisterMap(
      "name: all\n" + points +
          "mains: {from: [ac_voltage_v, ac_voltage_l2_v, ac_voltage_l3_v], ok_above_v: 180, "
          "require: all}\n",
      "all.yaml");
  ASSERT_TRUE(any.ok()) << any.status().ToString();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  struct Case {
    uint16_t l1, l2, l3;
    int any, all;  // -1 = absent
  };
  for (Case c : {Case{2300, 2310, 2290, 1, 1}, Case{2300, 0, 2290, 1, 0}, Case{0, 0, 0, 0, 0},
                 Case{1800, 1800, 1800, 0, 0},      // at the threshold is not above it
                 Case{0xFFFF, 2300, 0xFFFF, 1, 1},  // phases not read are left out
                 Case{0xFFFF, 0xFFFF, 0xFFFF, -1, -1}}) {
    std::map<std::pair<Function, uint16_t>, uint16_t> regs{
        {{kHr, 0}, c.l1}, {{kHr, 1}, c.l2}, {{kHr, 2}, c.l3}};
    for (auto [m, want] : {std::pair{&*any, c.any}, std::pair{&*all, c.all}}) {
      Reading r = Decode(*m, regs);
      if (want < 0) {
        EXPECT_EQ(r.mains_ok.quality, Quality::kAbsent) << m->name << " " << c.l1;
      } else {
        EXPECT_EQ(r.mains_ok.quality, Quality::kGood) << m->name << " " << c.l1;
        EXPECT_EQ(r.mains_ok.value, want) << m->name << " " << c.l1 << "/" << c.l2 << "/" << c.l3;
      }
    }
  }
  Reading r = Decode(*any, {{{kHr, 0}, 2301}, {{kHr, 1}, 2302}, {{kHr, 2}, 2303}});
  EXPECT_NEAR(r.ac_voltage_l3_v.value, 230.3, 1e-9);
}

TEST(RegisterMapTest, NewKeysRejectBadInputWithFileLine) {
  struct Case {
    const char* yaml;
    const char* error;
  };
  const Case cases[] = {
      {"points:\n  - {name: lvd_open, fc: 3, address: 1, type: bit, bit: 16}\n",
       "x.yaml:3: points[0].bit: value 16 out of range"},
      {"points:\n  - {name: lvd_open, fc: 2, address: 1, bit: 3}\n",
       "x.yaml:3: points[0].bit: bit selects a bit of a register"},
      {"points:\n  - {name: soc_pct, fc: 3, address: 1, bit: 3}\n",
       "x.yaml:3: points[0].bit: bit: goes with type bit"},
      {"points:\n  - {name: soc_pct, fc: 3, address: 1, absent: [0x10000]}\n",
       "x.yaml:3: points[0].absent[0]: value 65536 does not fit the register"},
      {"points:\n  - {name: mains_ok, fc: 2, address: 1, absent: [1]}\n",
       "x.yaml:3: points[0].absent: a coil or discrete input has no not-available value"},
      {"points:\n  - {name: mains_ok, fc: 3, address: 1, type: f32, one_of: [1]}\n",
       "x.yaml:3: points[0].one_of: one_of reads an integer register"},
      {"points:\n  - {name: mains_ok, fc: 3, address: 1, one_of: [1], scale: 2}\n",
       "x.yaml:3: points[0]: scale, scale_sf and offset do not apply to a 0/1 point"},
      {"points:\n  - {name: lvd_open, fc: 3, address: 1, type: bit, bit: 2, offset: 1}\n",
       "x.yaml:3: points[0]: scale, scale_sf and offset do not apply"},
      {"points:\n  - {name: soc_pct, fc: 3, address: 1, one_of: []}\n",
       "x.yaml:3: points[0].one_of: expected a non-empty list of integers"},
      {"points:\n  - {name: soc_pct, fc: 3, address: 1, absent: [x]}\n",
       "x.yaml:3: points[0].absent[0]: expected an integer"},
      {"points:\n  - {name: ac_voltage_v, fc: 3, address: 1}\nmains: {from: battery_voltage_v, "
       "ok_above_v: 180}\n",
       "x.yaml:4: mains.from: 'battery_voltage_v' is not an AC voltage point"},
      {"points:\n  - {name: ac_voltage_v, fc: 3, address: 1}\nmains: {from: ac_voltage_l2_v, "
       "ok_above_v: 180}\n",
       "x.yaml:4: mains.from: 'ac_voltage_l2_v' is not one of this map's points"},
      {"points:\n  - {name: ac_voltage_v, fc: 3, address: 1}\n  - {name: mains_ok, fc: 2, "
       "address: 1}\nmains: {from: ac_voltage_v, ok_above_v: 180}\n",
       "x.yaml:5: mains: the map has a mains_ok point already"},
      {"points:\n  - {name: ac_voltage_v, fc: 3, address: 1}\nmains: {from: ac_voltage_v}\n",
       "x.yaml:4: mains.ok_above_v: required key is missing"},
      {"points:\n  - {name: ac_voltage_v, fc: 3, address: 1}\nmains: {from: ac_voltage_v, "
       "ok_above_v: 180, require: most}\n",
       "x.yaml:4: mains.require: expected any|all"},
      {"points:\n  - {name: ac_voltage_v, fc: 3, address: 1, type: bit, bit: 1}\n",
       "x.yaml:3: points[0]: ac_voltage_v is a voltage, not a 0/1 point"},
      {"points:\n  - {name: soc_pct, fc: 3, address: 1, scale: 0}\n",
       "x.yaml:3: points[0].scale: scale 0 would erase every value"},
  };
  for (const Case& c : cases) {
    auto m = ParseRegisterMap(std::string("name: x\n") + c.yaml, "x.yaml");
    ASSERT_FALSE(m.ok()) << c.yaml;
    EXPECT_NE(m.status().message().find(c.error), std::string::npos)
        << "want: " << c.error << "\ngot: " << m.status().message();
  }
}

TEST(RegisterMapTest, BuiltinVendorMapsLoad) {
  auto reg = MapRegistry::Load("");
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  for (const char* name : {"sunspec-802", "sunspec-802-plant", "cordex-cxc-hp-lds",
                           "huawei-esm-48150b1", "victron-gx-system"})
    EXPECT_NE(reg->Find(name), nullptr) << name;
  // The built-in SunSpec map reads only what model 802 defines: one holding
  // block inside the model (40081..40133), mains by the current's direction.
  const RegisterMap* sunspec = reg->Find("sunspec-802");
  ASSERT_NE(sunspec, nullptr);
  ASSERT_EQ(sunspec->blocks.size(), 1u);
  EXPECT_EQ(sunspec->blocks[0].fc, Function::kReadHoldingRegisters);
  EXPECT_GE(sunspec->blocks[0].address, 40072);
  EXPECT_LE(sunspec->blocks[0].address + sunspec->blocks[0].count, 40134);
  ASSERT_TRUE(sunspec->mains.has_value());
  EXPECT_TRUE(sunspec->mains->from_current);
  EXPECT_DOUBLE_EQ(sunspec->mains->discharging_above_a, 1.0);
  const RegisterMap* cordex = reg->Find("cordex-cxc-hp-lds");
  ASSERT_NE(cordex, nullptr);
  ASSERT_TRUE(cordex->mains.has_value());
  EXPECT_EQ(cordex->points[0].address, 2);  // 30003 with address_base modicon
  ASSERT_EQ(cordex->blocks.size(), 1u);     // one FC04 read, 30003..30032
  EXPECT_EQ(cordex->blocks[0].count, 30);
}

TEST(RegisterMapTest, MainsFromTheBatteryCurrent) {
  const std::string head = R"(name: t
points:
  - {name: battery_current_a, fc: 3, address: 10, type: s16, scale: 0.1}
  - {name: ac_voltage_v, fc: 3, address: 11, type: u16}
)";
  auto m = ParseRegisterMap(head + "mains: {from: battery_current_a, discharging_above_a: 2.5}\n",
                            "t.yaml");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_TRUE(m->mains && m->mains->from_current);
  Reading r = DecodeReading(*m, {{400, 2300}}, core::TimePoint{}, nullptr);
  EXPECT_EQ(r.mains_ok.quality, Quality::kAbsent);  // the tracker decides, from the current
  EXPECT_EQ(r.mains_lost_above_discharge_a, 2.5);
  EXPECT_NEAR(r.battery_current_a.value, 40.0, 1e-9);
  // A map with an AC voltage rule, or none, does not take mains from the current.
  auto ac = ParseRegisterMap(head + "mains: {from: ac_voltage_v, ok_above_v: 150}\n", "t.yaml");
  ASSERT_TRUE(ac.ok()) << ac.status().ToString();
  EXPECT_FALSE(DecodeReading(*ac, {{400, 2300}}, core::TimePoint{}, nullptr)
                   .mains_lost_above_discharge_a.has_value());
  struct Bad {
    const char* mains;
    const char* error;
  } bad[] = {
      {"mains: {from: battery_current_a, ok_above_v: 150}\n", "not the current"},
      {"mains: {from: [battery_current_a, ac_voltage_v], ok_above_v: 150}\n",
       "nor battery_current_a alone"},
      {"mains: {from: ac_voltage_v, ok_above_v: 150, discharging_above_a: 1}\n",
       "only with from: battery_current_a"},
      {"mains: {from: battery_current_a, discharging_above_a: -1}\n", "discharging_above_a"},
  };
  for (const Bad& b : bad) {
    auto e = ParseRegisterMap(head + b.mains, "t.yaml");
    ASSERT_FALSE(e.ok()) << b.mains;
    EXPECT_NE(e.status().message().find(b.error), std::string::npos)
        << b.mains << " -> " << e.status().message();
  }
  auto missing = ParseRegisterMap(R"(name: t
points:
  - {name: soc_pct, fc: 3, address: 10, type: u16}
mains: {from: battery_current_a}
)",
                                  "t.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("'battery_current_a' is not one of this map's points"),
            std::string::npos)
      << missing.status().message();
}

}  // namespace
}  // namespace sitepower::modbus
