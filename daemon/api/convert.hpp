// proto <-> core conversions for the API (the only place that knows both).
#pragma once

#include <optional>

#include "sitepower/v1/crew.pb.h"
#include "tasks/task_ledger.hpp"

namespace sitepower::api {

sitepower::v1::Task ToProto(const tasks::Task& t);
sitepower::v1::TaskEvent ToProto(const tasks::TaskEvent& e);
// Statuses a crew may send; nullopt for the others.
std::optional<tasks::TaskStatus> FromProto(sitepower::v1::TaskStatus s);
sitepower::v1::TaskStatus ToProtoStatus(tasks::TaskStatus s);
sitepower::v1::Tier ToProtoTier(core::Tier t);

}  // namespace sitepower::api
