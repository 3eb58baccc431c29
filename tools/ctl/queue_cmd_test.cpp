// `sitepowerctl queue --json`: machine names from the proto, sites and crews.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ctl/queue_cmd.hpp"
#include "sitepower/v1/noc.pb.h"

namespace sitepower::ctl {
namespace {

namespace v1 = sitepower::v1;

TEST(QueueJsonTest, UsesProtoEnumNamesAndCarriesSitesAndCrews) {
  v1::QueueSnapshot q;
  q.set_version(7);
  auto* e = q.add_entries();
  e->mutable_task()->set_task_id("T-000001");
  e->mutable_task()->set_site_id("WZ-02");
  e->mutable_task()->set_crew_id("A1");
  e->mutable_task()->set_status(v1::TASK_STATUS_EN_ROUTE);
  e->mutable_task()->set_tier(v1::TIER_VIP);
  e->set_margin_min(-3.5);
  auto* s = q.add_sites();
  s->set_site_id("WZ-02");
  s->set_state(v1::POWER_STATE_ON_BATTERY);
  s->set_tier(v1::TIER_KEY);
  s->mutable_runtime()->set_p50_min(95);
  q.add_sites()->set_site_id("WZ-03");  // on mains: no runtime
  auto* c = q.add_crews();
  c->set_crew_id("A1");
  c->set_generators_left(5);
  c->set_available(true);

  auto j = nlohmann::json::parse(QueueJson(q));
  EXPECT_EQ(j["version"], 7);
  EXPECT_EQ(j["entries"][0]["status"], "TASK_STATUS_EN_ROUTE");
  EXPECT_EQ(j["entries"][0]["tier"], "TIER_VIP");
  EXPECT_EQ(j["entries"][0]["crew_id"], "A1");
  EXPECT_EQ(j["entries"][0]["margin_min"], -3.5);
  ASSERT_EQ(j["sites"].size(), 2u);
  EXPECT_EQ(j["sites"][0]["state"], "POWER_STATE_ON_BATTERY");
  EXPECT_EQ(j["sites"][0]["tier"], "TIER_KEY");
  EXPECT_EQ(j["sites"][0]["runtime"]["p50_min"], 95);
  EXPECT_TRUE(j["sites"][1]["runtime"].is_null());
  EXPECT_EQ(j["crews"][0]["crew_id"], "A1");
  EXPECT_EQ(j["crews"][0]["generators_left"], 5);
  EXPECT_EQ(j["crews"][0]["available"], true);
}

}  // namespace
}  // namespace sitepower::ctl
