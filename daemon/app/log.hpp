// Structured log lines, one per event: "2026-11-25T06:40:01Z INFO plan why=... site=WZ-01".
// Levels by consequence (STYLE §20): error = we failed a device/request/task;
// warning = outside the expected flow; info = state transitions; debug = per poll.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace sitepower::app {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// Sets the lowest level written (default kInfo). Call once at startup.
void SetLogLevel(LogLevel level);

// Writes one line to stderr; empty values are left out; values with spaces are quoted.
void LogLine(LogLevel level, const std::string& event,
             const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace sitepower::app
