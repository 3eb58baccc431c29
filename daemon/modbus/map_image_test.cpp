// map_image: EncodeImage is the inverse of DecodeReading, for every built-in
// map and for every feature a map can use.
#include "modbus/map_image.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace sitepower::modbus {
namespace {

constexpr Function kHr = Function::kReadHoldingRegisters;

RegisterMap Parse(const std::string& yaml) {
  auto m = ParseRegisterMap(yaml, "test.yaml");
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? *m : RegisterMap{};
}

Reading RoundTrip(const RegisterMap& m, const RegisterImage& img) {
  std::vector<std::string> problems;
  Reading r = DecodeReading(m, img.Blocks(m), core::TimePoint{}, &problems);
  EXPECT_TRUE(problems.empty()) << m.name << ": " << problems.front();
  return r;
}

// Site states a simulated controller goes through in a drill.
std::vector<std::pair<std::string, CanonicalValues>> States() {
  CanonicalValues charging;
  charging.battery_voltage_v = 53.52;
  charging.battery_current_a = -21.3;  // charging
  charging.battery_temp_c = 24.5;
  charging.soc_pct = 97;
  charging.remaining_ah = 182.4;
  charging.lvd_v = 43.2;
  charging.alarms = 0;
  charging.mains_ok = true;
  charging.generator_running = false;
  charging.lvd_open = false;
  CanonicalValues outage = charging;
  outage.battery_voltage_v = 48.07;
  outage.battery_current_a = 38.6;
  outage.battery_temp_c = -3.5;
  outage.soc_pct = 61;
  outage.remaining_ah = 96.25;
  outage.mains_ok = false;
  CanonicalValues generator = outage;
  generator.generator_running = true;
  generator.battery_current_a = -55.0;
  CanonicalValues disconnected = outage;
  disconnected.battery_voltage_v = 43.1;
  disconnected.battery_current_a = 0;
  disconnected.soc_pct = 0;
  disconnected.lvd_open = true;
  disconnected.alarms = 2048;  // the Huawei map's LVD bit is bit 11 of its alarm word
  CanonicalValues unknown;     // a device that knows nothing
  unknown.mains_ok = true;     // (the AC voltage behind a mains rule must come from somewhere)
  return {{"charging", charging},
          {"outage", outage},
          {"generator", generator},
          {"disconnected", disconnected},
          {"unknown", unknown}};
}

TEST(MapImageTest, EveryBuiltinMapRoundTrips) {
  auto reg = MapRegistry::Load("");
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  ASSERT_GE(reg->Names().size(), 4u);
  for (const auto& name : reg->Names()) {
    const RegisterMap& m = *reg->Find(name);
    for (const auto& [state, values] : States()) {
      SCOPED_TRACE(name + " / " + state);
      auto img = EncodeImage(m, values);
      ASSERT_TRUE(img.ok()) << img.status().ToString();
      Reading r = RoundTrip(m, *img);
      int checked = 0;
      for (const auto& p : m.points) {
        auto want = CanonicalValue(values, p.name);
        const PointValue& got = *ReadingSlot(r, p.name);
        if (!want) {
          // A 0/1 has no not-available value of its own (a bit is left at 0,
          // an enum shared with another flag serves that flag's value), and a
          // mains rule's AC voltage is made up from mains_ok.
          const bool flag = p.type == ValueType::kBit || !p.one_of.empty();
          if (!flag && !(m.mains && IsAcVoltagePoint(p.name))) {
            EXPECT_EQ(got.quality, Quality::kAbsent) << p.name;
          }
          continue;
        }
        ASSERT_EQ(got.quality, Quality::kGood) << p.name;
        EXPECT_NEAR(got.value, *want, img->resolution.at(p.name) / 2 + 1e-9) << p.name;
        ++checked;
      }
      if (m.mains && m.mains->from_current) {
        // Mains is the tracker's reading of the current (site_state.hpp).
        EXPECT_EQ(r.mains_ok.quality, Quality::kAbsent);
        EXPECT_EQ(r.mains_lost_above_discharge_a, m.mains->discharging_above_a);
      } else if (m.mains) {
        ASSERT_EQ(r.mains_ok.quality, Quality::kGood);
        EXPECT_EQ(r.mains_ok.value, *values.mains_ok ? 1 : 0);
        ++checked;
      }
      if (state != "unknown") {
        EXPECT_GE(checked, 3);
      }
    }
  }
}

TEST(MapImageTest, ScaleFactorRegistersGetTheFinestExponentAllUsersFit) {
  auto reg = MapRegistry::Load("");
  ASSERT_TRUE(reg.ok());
  const RegisterMap& m = *reg->Find("sunspec-802");
  CanonicalValues v;
  v.battery_voltage_v = 48.12;   // u16: 48120 fits at 10^-3
  v.battery_current_a = 512.34;  // inverted, s16: -512340, -51234 do not fit; -5123 at 10^-1
  v.soc_pct = std::nullopt;      // not known: its scale factor is "not implemented"
  auto img = EncodeImage(m, v);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  EXPECT_EQ(img->Get(kHr, 40129), static_cast<uint16_t>(-3));
  EXPECT_EQ(img->Get(kHr, 40104), 48120);
  EXPECT_EQ(img->Get(kHr, 40131), static_cast<uint16_t>(-1));
  EXPECT_EQ(img->Get(kHr, 40114), static_cast<uint16_t>(-5123));
  EXPECT_EQ(img->Get(kHr, 40126), 0x8000);
  EXPECT_EQ(img->Get(kHr, 40081), 0xFFFF);
  EXPECT_DOUBLE_EQ(img->resolution.at("battery_current_a"), 0.1);
}

TEST(MapImageTest, TypesWordOrderOffsetInvertAndBits) {
  RegisterMap m = Parse(R"(name: t
address_base: 1
points:
  - {name: remaining_ah, fc: 3, address: 1, type: u32, word_order: low_first, scale: 0.1}
  - {name: alarms, fc: 3, address: 3, type: s32}
  - {name: battery_temp_c, fc: 3, address: 5, type: s16, scale: 0.5, offset: -40}
  - {name: battery_current_a, fc: 3, address: 6, type: f32, invert: true}
  - {name: lvd_open, fc: 3, address: 8, type: bit, bit: 3}
  - {name: generator_running, fc: 3, address: 8, type: bit, bit: 15, invert: true}
  - {name: mains_ok, fc: 2, address: 1, type: bit, invert: true}
)");
  CanonicalValues v;
  v.remaining_ah = 10000;
  v.alarms = -2;
  v.battery_temp_c = 25;
  v.battery_current_a = 12.5;
  v.lvd_open = true;
  v.generator_running = false;
  v.mains_ok = true;
  auto img = EncodeImage(m, v);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  EXPECT_EQ(img->Get(kHr, 0), 0x86A0);  // 100000 = 0x000186A0, low word first
  EXPECT_EQ(img->Get(kHr, 1), 0x0001);
  EXPECT_EQ(img->Get(kHr, 2), 0xFFFF);  // -2, high word first
  EXPECT_EQ(img->Get(kHr, 3), 0xFFFE);
  EXPECT_EQ(img->Get(kHr, 4), 130);     // (25 + 40) / 0.5
  EXPECT_EQ(img->Get(kHr, 5), 0xC148);  // -12.5f = 0xC1480000
  EXPECT_EQ(img->Get(kHr, 6), 0x0000);
  EXPECT_EQ(img->Get(kHr, 7), 0x8008);  // bit 3 set, bit 15 set (inverted false)
  EXPECT_EQ(img->Get(Function::kReadDiscreteInputs, 0), 0);  // inverted true
  Reading r = RoundTrip(m, *img);
  EXPECT_NEAR(r.remaining_ah.value, 10000, 1e-9);
  EXPECT_EQ(r.alarms.value, -2);
  EXPECT_NEAR(r.battery_temp_c.value, 25, 1e-9);
  EXPECT_NEAR(r.battery_current_a.value, 12.5, 1e-9);
  EXPECT_EQ(r.lvd_open.value, 1);
  EXPECT_EQ(r.generator_running.value, 0);
  EXPECT_EQ(r.mains_ok.value, 1);
}

TEST(MapImageTest, AbsentValuesAreServedAsTheMapsNotAvailableWords) {
  auto reg = MapRegistry::Load("");
  ASSERT_TRUE(reg.ok());
  auto huawei = EncodeImage(*reg->Find("huawei-esm-48150b1"), CanonicalValues{});
  ASSERT_TRUE(huawei.ok()) << huawei.status().ToString();
  EXPECT_EQ(huawei->Get(kHr, 5), 0x7FFF);  // the map's first listed value
  EXPECT_EQ(huawei->Get(kHr, 0), 0xFFFF);  // u16 sentinel
  EXPECT_EQ(huawei->Get(kHr, 2), 0x8000);  // s16 sentinel
  CanonicalValues no_source;
  auto victron = EncodeImage(*reg->Find("victron-gx-system"), no_source);
  ASSERT_TRUE(victron.ok()) << victron.status().ToString();
  EXPECT_EQ(victron->Get(kHr, 826), 0);  // "Not available"
  auto cordex = EncodeImage(*reg->Find("cordex-cxc-hp-lds"), no_source);
  ASSERT_TRUE(cordex.ok());
  uint32_t bits = static_cast<uint32_t>(*cordex->Get(Function::kReadInputRegisters, 29)) << 16 |
                  *cordex->Get(Function::kReadInputRegisters, 28);  // low word first
  float f;
  std::memcpy(&f, &bits, sizeof f);
  EXPECT_TRUE(std::isnan(f));
}

TEST(MapImageTest, EnumRegistersServeOneValueForAllTheirFlags) {
  auto reg = MapRegistry::Load("");
  ASSERT_TRUE(reg.ok());
  const RegisterMap& m = *reg->Find("victron-gx-system");
  CanonicalValues v;
  v.mains_ok = false;
  v.generator_running = true;
  auto gen = EncodeImage(m, v);
  ASSERT_TRUE(gen.ok()) << gen.status().ToString();
  EXPECT_EQ(gen->Get(kHr, 826), 2);  // Generator
  v.mains_ok = true;
  v.generator_running = false;
  EXPECT_EQ(EncodeImage(m, v)->Get(kHr, 826), 1);  // Grid
  v.mains_ok = false;
  v.generator_running = false;
  auto none = EncodeImage(m, v);
  ASSERT_TRUE(none.ok());
  Reading r = RoundTrip(m, *none);
  EXPECT_EQ(r.mains_ok.value, 0);
  EXPECT_EQ(r.generator_running.value, 0);
  v.mains_ok = true;
  v.generator_running = true;
  auto both = EncodeImage(m, v);
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("no value of fc 3 address 826"), std::string::npos)
      << both.status().message();
}

TEST(MapImageTest, MainsRuleServesAcVoltage) {
  auto reg = MapRegistry::Load("");
  ASSERT_TRUE(reg.ok());
  const RegisterMap& m = *reg->Find("cordex-cxc-hp-lds");
  CanonicalValues v;
  v.mains_ok = false;
  auto lost = EncodeImage(m, v);
  ASSERT_TRUE(lost.ok());
  EXPECT_EQ(lost->Get(Function::kReadInputRegisters, 10), 0);
  EXPECT_EQ(lost->Get(Function::kReadInputRegisters, 11), 0);
  v.mains_ok = true;
  v.ac_voltage_v = 208.5;
  auto ok = EncodeImage(m, v);
  ASSERT_TRUE(ok.ok());
  Reading r = RoundTrip(m, *ok);
  EXPECT_NEAR(r.ac_voltage_v.value, 208.5, 1e-4);
  EXPECT_EQ(r.mains_ok.value, 1);
  v.ac_voltage_v = 95;  // below the map's 150 V: cannot be mains ok
  auto bad = EncodeImage(m, v);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("mains_ok=1 contradicts the AC voltages"),
            std::string::npos)
      << bad.status().message();
}

TEST(MapImageTest, RefusesWhatTheDeviceCouldNotServe) {
  RegisterMap m = Parse(R"(name: t
points:
  - {name: battery_voltage_v, fc: 3, address: 0, type: u16, scale: 0.01, min: 0, max: 100}
  - {name: soc_pct, fc: 3, address: 1, type: u16, absent: [100]}
  - {name: alarms, fc: 3, address: 2, type: u16}
  - {name: lvd_open, fc: 3, address: 2, type: bit, bit: 4}
  - {name: battery_temp_c, fc: 3, address: 3, type: s16}
)");
  struct Case {
    CanonicalValues v;
    const char* error;
  };
  std::vector<Case> cases(5);
  cases[0].v.battery_voltage_v = 120;
  cases[0].error = "battery_voltage_v (line 3): value 120 is outside the map's bounds";
  cases[1].v.battery_voltage_v = -1;
  cases[1].error = "battery_voltage_v (line 3): value -1 is outside the map's bounds";
  cases[2].v.soc_pct = 100;
  cases[2].error = "soc_pct (line 4): value 100 would be served as the not-available value 0x64";
  cases[3].v.alarms = 0;
  cases[3].v.lvd_open = true;
  cases[3].error = "lvd_open contradicts alarms at fc 3 address 2";
  cases[4].v.battery_temp_c = 40000;
  cases[4].error = "battery_temp_c (line 7): value 40000 does not fit the register";
  for (const Case& c : cases) {
    auto img = EncodeImage(m, c.v);
    ASSERT_FALSE(img.ok()) << c.error;
    EXPECT_NE(img.status().message().find(c.error), std::string::npos)
        << "want: " << c.error << "\ngot: " << img.status().message();
  }
  CanonicalValues agree;
  agree.alarms = 16;
  agree.lvd_open = true;
  EXPECT_TRUE(EncodeImage(m, agree).ok());
}

}  // namespace
}  // namespace sitepower::modbus
