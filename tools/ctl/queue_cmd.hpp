// `sitepowerctl queue` (gRPC NocService) and `sitepowerctl override` (the
// daemon's HTTP API, the same endpoint the dashboard uses).
#pragma once

#include <string>

namespace sitepower::v1 {
class QueueSnapshot;
}

namespace sitepower::ctl {

// `queue --json`: one JSON object per snapshot with the proto's field and
// enum names (TASK_STATUS_*, TIER_*, POWER_STATE_*): entries, sites, crews.
std::string QueueJson(const sitepower::v1::QueueSnapshot& q);

// queue --server HOST:PORT --token T [--tls-ca FILE] [--watch] [--json]
int RunQueueCommand(int argc, char** argv);

// override --http HOST:PORT --token T pin SITE CREW --why TEXT
//          | protect-vip SITE --until HH:MM|ISO --why TEXT | hold SITE --why TEXT
//          | cancel SITE --why TEXT | crew-unavailable CREW --why TEXT | clear SITE --why TEXT
int RunOverrideCommand(int argc, char** argv);

}  // namespace sitepower::ctl
