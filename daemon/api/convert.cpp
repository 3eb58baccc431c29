#include "api/convert.hpp"

namespace sitepower::api {

namespace v1 = sitepower::v1;

namespace {
int64_t Ms(core::TimePoint t) { return t.time_since_epoch().count(); }

}  // namespace

v1::Tier ToProtoTier(core::Tier t) {
  return t == core::Tier::kVip   ? v1::TIER_VIP
         : t == core::Tier::kKey ? v1::TIER_KEY
                                 : v1::TIER_STANDARD;
}

v1::TaskStatus ToProtoStatus(tasks::TaskStatus s) {
  switch (s) {
    case tasks::TaskStatus::kAssigned:
      return v1::TASK_STATUS_ASSIGNED;
    case tasks::TaskStatus::kAccepted:
      return v1::TASK_STATUS_ACCEPTED;
    case tasks::TaskStatus::kEnRoute:
      return v1::TASK_STATUS_EN_ROUTE;
    case tasks::TaskStatus::kOnSite:
      return v1::TASK_STATUS_ON_SITE;
    case tasks::TaskStatus::kGeneratorRunning:
      return v1::TASK_STATUS_GENERATOR_RUNNING;
    case tasks::TaskStatus::kReleased:
      return v1::TASK_STATUS_RELEASED;
    case tasks::TaskStatus::kCancelled:
      return v1::TASK_STATUS_CANCELLED;
    case tasks::TaskStatus::kDeclined:
      return v1::TASK_STATUS_DECLINED;
  }
  return v1::TASK_STATUS_UNSPECIFIED;
}

std::optional<tasks::TaskStatus> FromProto(v1::TaskStatus s) {
  switch (s) {
    case v1::TASK_STATUS_ACCEPTED:
      return tasks::TaskStatus::kAccepted;
    case v1::TASK_STATUS_EN_ROUTE:
      return tasks::TaskStatus::kEnRoute;
    case v1::TASK_STATUS_ON_SITE:
      return tasks::TaskStatus::kOnSite;
    case v1::TASK_STATUS_GENERATOR_RUNNING:
      return tasks::TaskStatus::kGeneratorRunning;
    case v1::TASK_STATUS_DECLINED:
      return tasks::TaskStatus::kDeclined;
    default:
      return std::nullopt;
  }
}

v1::Task ToProto(const tasks::Task& t) {
  v1::Task p;
  p.set_task_id(t.id);
  p.set_site_id(t.site);
  p.set_site_name(t.site_name);
  p.mutable_location()->set_lat(t.location.lat);
  p.mutable_location()->set_lon(t.location.lon);
  p.set_tier(ToProtoTier(t.tier));
  p.set_crew_id(t.crew);
  p.set_status(ToProtoStatus(t.status));
  p.set_order(t.order);
  p.set_eta_unix_ms(Ms(t.eta));
  p.set_deadline_unix_ms(Ms(t.deadline));
  p.mutable_runtime()->set_p10_min(t.p10_min);
  p.mutable_runtime()->set_p50_min(t.p50_min);
  p.mutable_runtime()->set_p90_min(t.p90_min);
  p.mutable_runtime()->set_at_unix_ms(Ms(t.updated));
  p.set_reason(t.reason);
  p.set_updated_unix_ms(Ms(t.updated));
  p.set_decline_reason(t.decline_reason);
  p.set_hookup_min(t.hookup_min);
  return p;
}

v1::TaskEvent ToProto(const tasks::TaskEvent& e) {
  v1::TaskEvent p;
  p.set_seq(e.seq);
  p.set_at_unix_ms(Ms(e.at));
  switch (e.kind) {
    case tasks::EventKind::kAssigned:
      p.set_kind(v1::TaskEvent::KIND_ASSIGNED);
      break;
    case tasks::EventKind::kUpdated:
      p.set_kind(v1::TaskEvent::KIND_UPDATED);
      break;
    case tasks::EventKind::kStatus:
      p.set_kind(v1::TaskEvent::KIND_STATUS);
      break;
    case tasks::EventKind::kCancelled:
      p.set_kind(v1::TaskEvent::KIND_CANCELLED);
      break;
    case tasks::EventKind::kReassigned:
      p.set_kind(v1::TaskEvent::KIND_REASSIGNED);
      break;
  }
  *p.mutable_task() = ToProto(e.task);
  p.set_message(e.message);
  return p;
}

}  // namespace sitepower::api
