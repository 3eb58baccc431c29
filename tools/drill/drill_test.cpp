#include "drill/drill.hpp"

#include <gtest/gtest.h>

namespace sitepower::drill {
namespace {

TEST(ChaosTest, ParsesEveryKindAndRefusesBadInput) {
  auto s = scenario::LoadScenarioFile(SITEPOWER_SHARED_DIR "/scenarios/wuzhai-2020-03-08.yaml");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto kill = ParseChaos("daemon_kill@09:40:30", *s);
  ASSERT_TRUE(kill.ok()) << kill.status().ToString();
  EXPECT_DOUBLE_EQ(std::get<scenario::DaemonKill>(kill->body).restart_after_s, 30);
  EXPECT_EQ(core::FormatHhMm(kill->at, 480), "09:40");
  auto fault = ParseChaos("controller_fault@09:20:WZ-02:half_open:20", *s);
  ASSERT_TRUE(fault.ok());
  EXPECT_EQ(std::get<scenario::ControllerFault>(fault->body).kind, scenario::FaultKind::kHalfOpen);
  EXPECT_TRUE(ParseChaos("crew_unavailable@10:00:A1", *s).ok());
  EXPECT_TRUE(ParseChaos("crew_link_cut@09:50:B1:15", *s).ok());
  for (const char* bad : {"daemon_kill@09:40:30s", "daemon_kill@09:40:abc", "daemon_kill",
                          "controller_fault@09:20:WZ-99:timeout:5",
                          "controller_fault@09:20:WZ-02:melt:5", "crew_link_cut@09:50:B1",
                          "crew_unavailable@10:00:Z9", "flood@10:00", "daemon_kill@25:99:1"}) {
    auto r = ParseChaos(bad, *s);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
    }
  }
}

}  // namespace
}  // namespace sitepower::drill
