// Wires the modules into one running daemon: clock, store, ledger, engine,
// gRPC, web and poller on one io_context. main.cpp only parses flags.
#pragma once

#include <string>

#include "app/config.hpp"
#include "core/status.hpp"

namespace sitepower::app {

// Validates what --check promises: the config itself (already loaded), every
// site's register map exists, TLS files are readable. OK or every problem found.
core::Status CheckConfig(const Config& config);

// Runs until SIGINT/SIGTERM. Returns the exit code. Startup failures (store
// cannot open, port in use) are reported and give a non-zero code; a
// controller that cannot be reached is not a startup failure.
int RunDaemon(const Config& config);

}  // namespace sitepower::app
