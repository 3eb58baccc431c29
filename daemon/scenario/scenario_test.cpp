#include "scenario/scenario.hpp"

#include <gtest/gtest.h>

namespace sitepower::scenario {
namespace {

const std::string kShared = SITEPOWER_SHARED_DIR "/scenarios/";

TEST(ScenarioTest, LoadsWuzhai) {
  auto s = LoadScenarioFile(kShared + "wuzhai-2020-03-08.yaml");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->name, "wuzhai-2020-03-08");
  EXPECT_EQ(s->sites.size(), 18u);
  EXPECT_EQ(s->crews.size(), 3u);
  EXPECT_EQ(s->start.offset_min, 480);
  EXPECT_DOUBLE_EQ(s->hookup_min, 12);
  EXPECT_EQ(core::FormatIso8601(s->end, 480), "2020-03-08T20:00:00+08:00");
  auto fail = s->FirstMainsFail("WZ-11");
  ASSERT_TRUE(fail.has_value());
  EXPECT_EQ(core::FormatHhMm(*fail, 480), "08:30");
  EXPECT_EQ(core::FormatHhMm(*s->MainsRestoreAfterFail("WZ-11"), 480), "17:30");
  const Site* hub = s->FindSite("WZ-11");
  ASSERT_NE(hub, nullptr);
  EXPECT_EQ(hub->tier, core::Tier::kKey);
  EXPECT_EQ(hub->feeds.size(), 3u);
  ASSERT_TRUE(hub->battery.has_value());
  EXPECT_DOUBLE_EQ(hub->battery->soh, 0.72);
}

TEST(ScenarioTest, LoadsTyphoon) {
  auto s = LoadScenarioFile(kShared + "typhoon-small.yaml");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->sites.size(), 60u);
  EXPECT_FALSE(s->events.empty());
}

struct BadCase {
  const char* yaml;
  const char* expect;
};

const char* kBase = R"(name: t
start: 2020-03-08T08:00:00+08:00
sites:
  - id: S1
    location: [38.9, 111.8]
    load_w: 2000
    runtime_min: 100
crews:
  - id: C1
    location: [38.9, 111.8]
    generators: 1
)";

TEST(ScenarioTest, BadScenariosNameFileLineAndKey) {
  const BadCase cases[] = {
      {"colour: red\n", "t.yaml:12: colour: unknown key"},
      {"events:\n  - at: \"09:00\"\n    mains_fail: [S9]\n",
       "t.yaml:13: events: unknown site 'S9'"},
      {"events:\n  - at: 9:00\n    mains_fail: all\n", "events[0].at: bad time"},
      {"events:\n  - at: \"10:00\"\n    mains_fail: all\n  - at: \"09:00\"\n    mains_restore: "
       "all\n",
       "events must be in time order"},
      {"events:\n  - at: \"10:00\"\n    crew_unavailable: Z9\n", "unknown crew 'Z9'"},
      {"events:\n  - at: \"10:00\"\n    controller_fault: {site: S1, kind: melted, for_min: 3}\n",
       "events[0].controller_fault.kind: expected timeout|exception|garbage|half_open"},
  };
  for (const auto& c : cases) {
    auto s = LoadScenarioString(std::string(kBase) + c.yaml, "t.yaml");
    ASSERT_FALSE(s.ok()) << c.yaml;
    EXPECT_NE(s.status().message().find(c.expect), std::string::npos)
        << "got: " << s.status().message() << "\nwanted: " << c.expect;
  }
  auto bad_tier = LoadScenarioString(
      "name: t\nstart: 2020-03-08T08:00:00+08:00\nsites:\n  - id: S1\n    location: [1, 2]\n"
      "    tier: gold\n    load_w: 1\n    runtime_min: 5\ncrews: []\n",
      "t.yaml");
  ASSERT_FALSE(bad_tier.ok());
  EXPECT_NE(bad_tier.status().message().find("t.yaml:6: sites[0].tier: expected vip|key|standard"),
            std::string::npos);
}

Route R(const std::string& crew, std::initializer_list<const char*> sites) {
  Route r{crew, {}};
  for (const char* id : sites) {
    PlannedStop st;
    st.site = id;
    r.stops.push_back(st);
  }
  return r;
}

// Two sites in a line north of the crew; the hub H feeds D.
const char* kFeeds = R"(name: f
start: 2020-03-08T08:00:00+00:00
end: "12:00"
travel: {speed_kmh: 60, road_factor: 1.0}
hookup_min: 10
sites:
  - {id: H, location: [0.0, 0.0], tier: key, feeds: [D], load_w: 1, runtime_min: 30}
  - {id: D, location: [0.0, 0.0], tier: standard, load_w: 1, runtime_min: 60}
  - {id: V, location: [0.0, 0.0], tier: vip, load_w: 1, runtime_min: 20}
crews:
  - {id: C1, location: [0.0, 0.0], generators: 2}
events:
  - at: "08:00"
    mains_fail: all
  - at: "11:00"
    mains_restore: [H, D]
)";

TEST(ScenarioTest, ScoresFeedsUnionAndUnserved) {
  auto s = LoadScenarioString(kFeeds, "f.yaml");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Plan p{"f", s->start.at, {R("C1", {"V", "D"})}};
  ASSERT_TRUE(ValidatePlan(p, *s).ok());
  Score sc = ScorePlan(*s, p, {});
  // V running at 08:10 (before its 08:20 deadline). D at 08:20 (before 09:00).
  // H never served: down 08:30 -> 11:00 (restore) = 150 min; D is fed by H, so
  // D is down for H's interval too, although its own generator runs.
  EXPECT_DOUBLE_EQ(sc.sites["V"].down_min, 0);
  EXPECT_NEAR(sc.sites["H"].down_min, 150, 1e-6);
  EXPECT_NEAR(sc.sites["D"].down_min, 150, 1e-6);
  EXPECT_EQ(sc.vip_down, 0);
  EXPECT_EQ(sc.key_down, 1);
  EXPECT_EQ(sc.standard_down, 1);
  EXPECT_NEAR(sc.weighted_down_min, 150 * 10 + 150 * 1, 1e-6);
  EXPECT_NEAR(sc.travel_min, 0, 1e-9);
}

TEST(ScenarioTest, OverlappingFeederIntervalsCountOnce) {
  auto s = LoadScenarioString(kFeeds, "f.yaml");
  // Nobody comes: H down 08:30-11:00, D's own 09:00-11:00 overlaps: union 150.
  Plan p{"f", s->start.at, {}};
  Score sc = ScorePlan(*s, p, {});
  EXPECT_NEAR(sc.sites["D"].down_min, 150, 1e-6);
  EXPECT_NEAR(sc.sites["V"].down_min, 220, 1e-6);  // 08:20 -> end 12:00
  EXPECT_EQ(sc.vip_down, 1);
}

TEST(ScenarioTest, InvalidPlansAreErrors) {
  auto s = LoadScenarioString(kFeeds, "f.yaml");
  Plan too_many{"f", s->start.at, {R("C1", {"V", "D", "H"})}};
  EXPECT_NE(ValidatePlan(too_many, *s).message().find("carries 2 generators"), std::string::npos);
  Plan twice{"f", s->start.at, {R("C1", {"V", "V"})}};
  EXPECT_NE(ValidatePlan(twice, *s).message().find("twice"), std::string::npos);
  Plan unknown{"f", s->start.at, {R("Z", {})}};
  EXPECT_NE(ValidatePlan(unknown, *s).message().find("unknown crew"), std::string::npos);
}

TEST(ScenarioTest, PlanJsonRoundTrip) {
  auto s = LoadScenarioString(kFeeds, "f.yaml");
  Plan p{"f", s->start.at, {R("C1", {"V", "H"})}};
  std::string text = PlanToJson(p, 0);
  auto back = PlanFromJson(text, *s);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->routes[0].stops[1].site, "H");
  EXPECT_EQ(back->planned_at, p.planned_at);
}

// FORMAT.md v2: controller: {protocol: ydt1363, map: NAME, adr: N}.
TEST(ScenarioTest, YdtControllers) {
  std::string yaml = kBase;
  yaml.insert(yaml.find("crews:"),
              "    controller: {protocol: ydt1363, map: ydt-pylontech-lfp, adr: 2}\n");
  auto s = LoadScenarioString(yaml, "t.yaml");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->sites[0].controller.protocol, "ydt1363");
  EXPECT_EQ(s->sites[0].controller.map, "ydt-pylontech-lfp");
  EXPECT_EQ(s->sites[0].controller.unit, 2);
  std::string unit = kBase;
  unit.insert(unit.find("crews:"), "    controller: {protocol: ydt1363, unit: 2}\n");
  auto bad = LoadScenarioString(unit, "t.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("sites[0].controller.unit: protocol ydt1363 takes adr"),
            std::string::npos)
      << bad.status().message();
  std::string modbus = kBase;
  modbus.insert(modbus.find("crews:"), "    controller: {map: sunspec-802, unit: 3}\n");
  auto m = LoadScenarioString(modbus, "t.yaml");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->sites[0].controller.protocol, "modbus");  // the default
  EXPECT_EQ(m->sites[0].controller.unit, 3);
}

}  // namespace
}  // namespace sitepower::scenario
