// `sitepowerctl queue` (gRPC NocService) and `sitepowerctl override` (the
// daemon's HTTP API, the same endpoint the dashboard uses).
#pragma once

namespace sitepower::ctl {

// queue --server HOST:PORT --token T [--tls-ca FILE] [--watch] [--json]
int RunQueueCommand(int argc, char** argv);

// override --http HOST:PORT --token T pin SITE CREW --why TEXT
//          | protect-vip SITE --until HH:MM|ISO --why TEXT | hold SITE --why TEXT
//          | cancel SITE --why TEXT | crew-unavailable CREW --why TEXT | clear SITE --why TEXT
int RunOverrideCommand(int argc, char** argv);

}  // namespace sitepower::ctl
