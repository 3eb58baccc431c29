#!/usr/bin/env bash
# Runs the dashboard browser test: installs playwright-core (the pinned
# package-lock.json; no browser download) if missing, then drives Debian's
# chromium. Usage: run.sh BIN_DIR SCENARIO_DIR SCREENSHOT.png
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -d "$here/node_modules/playwright-core" ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$here" --no-audit --no-fund --loglevel=error
fi
exec node "$here/dashboard_test.mjs" "$@"
