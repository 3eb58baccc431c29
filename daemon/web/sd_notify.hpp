// systemd notifications (Type=notify + WatchdogSec); no-ops outside systemd.
#pragma once

namespace sitepower::web {

void NotifyReady();
void NotifyWatchdog();
void NotifyStopping();

}  // namespace sitepower::web
