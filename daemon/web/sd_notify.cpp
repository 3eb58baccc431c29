#include "web/sd_notify.hpp"

#ifdef SITEPOWER_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace sitepower::web {

#ifdef SITEPOWER_HAVE_SYSTEMD
void NotifyReady() { sd_notify(0, "READY=1"); }
void NotifyWatchdog() { sd_notify(0, "WATCHDOG=1"); }
void NotifyStopping() { sd_notify(0, "STOPPING=1"); }
#else
void NotifyReady() {}
void NotifyWatchdog() {}
void NotifyStopping() {}
#endif

}  // namespace sitepower::web
