// SunSpec discovery: the pure walker, relocation, and the poller against a
// libmodbus server whose chain is not where the map assumes it.
#include "modbus/sunspec.hpp"

#include <gtest/gtest.h>

#include "modbus/poller.hpp"
#include "modbus/test_server.hpp"

namespace sitepower::modbus {
namespace {

// Answers the walker's reads from a sparse register image; unknown addresses
// are refused like a device would (illegal data address).
SunSpecWalker Walk(const std::map<uint16_t, uint16_t>& regs) {
  SunSpecWalker w;
  int guard = 0;
  while (auto next = w.Next()) {
    if (++guard > 100) break;
    auto a = regs.find(next->address), b = regs.find(next->address + 1);
    if (a == regs.end() || b == regs.end())
      w.FeedException("exception 0x02 (illegal data address)");
    else
      w.Feed(std::vector<uint16_t>{a->second, b->second});
  }
  return w;
}

std::map<uint16_t, uint16_t> Chain(uint16_t marker,
                                   std::vector<std::pair<uint16_t, uint16_t>> models,
                                   bool end_marker = true) {
  std::map<uint16_t, uint16_t> r{{marker, kSunSpecMarkerHi}, {marker + 1, kSunSpecMarkerLo}};
  uint16_t at = marker + 2;
  for (auto [id, len] : models) {
    r[at] = id;
    r[at + 1] = len;
    at = static_cast<uint16_t>(at + 2 + len);
  }
  if (end_marker) {
    r[at] = kSunSpecEndOfChain;
    r[at + 1] = 0;
  }
  return r;
}

TEST(SunSpecWalkerTest, FindsTheMarkerAtEveryProbeAddressAndWalksTheChain) {
  for (uint16_t base : SunSpecProbeAddresses()) {
    SunSpecWalker w = Walk(Chain(base, {{1, 66}, {701, 10}, {802, 62}}));
    ASSERT_TRUE(w.error().ok()) << base << ": " << w.error().ToString();
    ASSERT_TRUE(w.done());
    EXPECT_EQ(w.chain().marker, base);
    ASSERT_EQ(w.chain().models.size(), 3u);
    const SunSpecModel* m = w.chain().Find(802);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->address, base + 2 + 68 + 12);
    EXPECT_EQ(m->length, 62);
  }
}

TEST(SunSpecWalkerTest, ProbesInOrderAndSkipsWrongWords) {
  auto regs = Chain(50000, {{1, 66}, {802, 62}});
  regs[40000] = 0x1234;  // something else lives at 40000
  regs[40001] = 0x5678;
  SunSpecWalker w = Walk(regs);
  ASSERT_TRUE(w.error().ok()) << w.error().ToString();
  EXPECT_EQ(w.chain().ToString(), "SunS@50000: 1@50002(66) 802@50070(62)");
}

TEST(SunSpecWalkerTest, ChainEndedByARefusedReadIsAccepted) {
  SunSpecWalker w = Walk(Chain(40000, {{1, 66}, {802, 62}}, /*end_marker=*/false));
  ASSERT_TRUE(w.error().ok()) << w.error().ToString();
  EXPECT_EQ(w.chain().models.size(), 2u);
}

TEST(SunSpecWalkerTest, NoMarkerNamesEveryProbe) {
  SunSpecWalker w = Walk({{40000, 0}, {40001, 0}});
  ASSERT_FALSE(w.error().ok());
  const std::string& e = w.error().message();
  EXPECT_NE(e.find("no SunSpec \"SunS\" marker"), std::string::npos) << e;
  EXPECT_NE(e.find("40000: 0x0000 0x0000"), std::string::npos) << e;
  EXPECT_NE(e.find("50001: exception 0x02"), std::string::npos) << e;
}

TEST(SunSpecWalkerTest, BrokenChainsFail) {
  auto regs = Chain(40000, {{1, 66}});
  regs[40070] = 0;  // model id 0 where the next header should be
  regs[40071] = 5;
  SunSpecWalker w = Walk(regs);
  ASSERT_FALSE(w.error().ok());
  EXPECT_NE(w.error().message().find("broken at register 40070"), std::string::npos)
      << w.error().message();
  // A chain that never ends (a device answering the same words everywhere).
  SunSpecWalker loop;
  loop.Feed(std::vector<uint16_t>{kSunSpecMarkerHi, kSunSpecMarkerLo});
  for (int i = 0; i < 100 && loop.Next(); ++i) loop.Feed(std::vector<uint16_t>{1, 0});
  EXPECT_FALSE(loop.error().ok());
  SunSpecWalker shorty;
  shorty.Feed(std::vector<uint16_t>{kSunSpecMarkerHi});
  EXPECT_NE(shorty.error().message().find("short answer"), std::string::npos);
}

TEST(SunSpecRelocateTest, MovesModelPointsOnlyAndChecksLength) {
  auto maps = MapRegistry::Load("");
  ASSERT_TRUE(maps.ok()) << maps.status().ToString();
  const RegisterMap* m = maps->Find("sunspec-802-plant");
  ASSERT_NE(m, nullptr);
  SunSpecChain chain{0, {{1, 2, 66}, {802, 70, 62}}};
  auto moved = RelocateToChain(*m, chain);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  for (const auto& p : moved->points) {
    if (p.name == "battery_voltage_v") {
      EXPECT_EQ(p.address, 104);
      EXPECT_EQ(p.scale_sf, 129);
    }
    if (p.name == "battery_temp_c") {
      EXPECT_EQ(p.address, 40200);  // the vendor block stays
    }
    if (p.name == "mains_ok") {
      EXPECT_EQ(p.address, 0);
    }
  }
  for (const auto& b : moved->blocks) {
    if (b.fc == Function::kReadHoldingRegisters) {
      EXPECT_TRUE(b.address < 200 || b.address >= 40200) << b.address;
    }
  }

  SunSpecChain shorter{40000, {{1, 40002, 66}, {802, 40070, 30}}};
  auto bad = RelocateToChain(*m, shorter);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("past this device's model 802"), std::string::npos)
      << bad.status().message();
  SunSpecChain none{40000, {{1, 40002, 66}}};
  EXPECT_NE(RelocateToChain(*m, none).status().message().find("no SunSpec model 802"),
            std::string::npos);
}

// A libmodbus server image with SunS at `marker`, model 1, an unknown model,
// then 802, and the plant block at its fixed addresses.
void FillSunSpec(modbus_mapping_t* mm, int lo, int hi, int marker) {
  auto h = [mm, lo](int addr, uint16_t v) { mm->tab_registers[addr - lo] = v; };
  for (int a = lo; a < hi; ++a) h(a, 0xFFFF);
  int at = marker;
  h(at++, kSunSpecMarkerHi);
  h(at++, kSunSpecMarkerLo);
  h(at++, 1);
  h(at++, 66);
  const char* mn = "Acme Power";  // Mn: 5 registers of text, then NUL padding
  for (int i = 0; i < 5; ++i) h(at + i, static_cast<uint16_t>(mn[2 * i] << 8 | mn[2 * i + 1]));
  for (int i = 5; i < 64; ++i) h(at + i, 0);
  h(at + 16, 'D' << 8 | 'C');  // Md "DC48"
  h(at + 17, '4' << 8 | '8');
  h(at + 40, '2' << 8 | '.');  // Vr "2.1"
  h(at + 41, '1' << 8);
  h(at + 48, 'S' << 8 | 'N');  // SN "SN7"
  h(at + 49, '7' << 8);
  at += 66;
  h(at++, 64203);  // a vendor model the walker must step over
  h(at++, 4);
  at += 4;
  const int m802 = at;
  h(at++, 802);
  h(at++, 62);
  auto body = [&h, m802](int offset, uint16_t v) { h(m802 + 2 + offset, v); };
  body(9, 64);                            // SoC 64 %
  body(32, 5012);                         // V 50.12 with V_SF -2
  body(42, static_cast<uint16_t>(-123));  // A -12.3 (charging on the wire)
  body(54, 0);                            // SoC_SF (40126 in the common layout)
  body(57, static_cast<uint16_t>(-2));    // V_SF (40129)
  body(59, static_cast<uint16_t>(-1));    // A_SF (40131)
  body(24, 0);
  body(25, 0);  // Evt1
  h(m802 + 64, kSunSpecEndOfChain);
  h(m802 + 65, 0);
  h(40200, 215);  // 21.5 C
  h(40201, 4320);
  mm->tab_input_bits[0] = 1;
}

struct SunSpecServer : testing::TestServer {
  explicit SunSpecServer(int marker)
      : TestServer(Lo(marker), Hi(marker) - Lo(marker), [marker](modbus_mapping_t* mm) {
          FillSunSpec(mm, Lo(marker), Hi(marker), marker);
        }) {}
  static int Lo(int marker) { return std::min(marker, 40200); }
  static int Hi(int marker) { return std::max(marker + 200, 40202); }
};

TEST(SunSpecCommonModelTest, DecodesIdentityStrings) {
  std::vector<uint16_t> body(66, 0);
  auto put = [&body](int at, const char* text) {
    for (int i = 0; text[i]; ++i)
      body[at + i / 2] |=
          static_cast<uint16_t>(static_cast<unsigned char>(text[i]) << (i % 2 ? 0 : 8));
  };
  put(0, "SunSpecCo");       // odd length: the last register's low byte is NUL
  put(16, "NetSure 721  ");  // trailing blanks trimmed
  put(40, "v3.2\x01");       // an unprintable byte shows as '?'
  put(48, "ABC-123");
  auto id = DecodeCommonModel(body);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(id->manufacturer, "SunSpecCo");
  EXPECT_EQ(id->model, "NetSure 721");
  EXPECT_EQ(id->version, "v3.2?");
  EXPECT_EQ(id->serial, "ABC-123");
  EXPECT_EQ(id->ToString(), "SunSpecCo NetSure 721 v3.2? serial ABC-123");
  EXPECT_FALSE(DecodeCommonModel(std::span<const uint16_t>(body).first(40)).ok());
}

TEST(SunSpecPollerTest, ReadsDevicesWhoseChainIsElsewhere) {
  auto maps = MapRegistry::Load("");
  ASSERT_TRUE(maps.ok());
  for (uint16_t marker : {uint16_t{0}, uint16_t{50000}, uint16_t{40001}}) {
    SunSpecServer server(marker);
    boost::asio::io_context io;
    core::SystemClock clock;
    PollerOptions opts;
    opts.interval = core::Millis(20);
    opts.timeout = core::Millis(1000);
    std::vector<Reading> got;
    Poller poller(io, clock, *maps, opts,
                  [&got](const core::SiteId&, const Reading& r) { got.push_back(r); });
    ASSERT_TRUE(
        poller.AddDevice(DeviceSpec::Tcp("S", "127.0.0.1", server.port(), 1, "sunspec-802-plant"))
            .ok());
    poller.Start();
    while (got.size() < 2) io.run_one();
    poller.Stop();
    io.run();
    for (const Reading& r : got) {
      ASSERT_TRUE(r.poll_ok) << "marker " << marker << ": " << r.error;
      EXPECT_NEAR(r.battery_voltage_v.value, 50.12, 1e-9) << marker;
      EXPECT_NEAR(r.battery_current_a.value, 12.3, 1e-9) << marker;  // discharge-positive
      EXPECT_EQ(r.soc_pct.value, 64) << marker;
      EXPECT_NEAR(r.battery_temp_c.value, 21.5, 1e-9) << marker;
      EXPECT_EQ(r.mains_ok.value, 1) << marker;
      ASSERT_TRUE(r.identity) << marker;  // model 1, read once at discovery
      EXPECT_EQ(*r.identity, "Acme Power DC48 2.1 serial SN7") << marker;
    }
  }
}

}  // namespace
}  // namespace sitepower::modbus
