#include "app/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace sitepower::app {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

const char* Name(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "INFO";
}

void AppendValue(std::string& out, const std::string& v) {
  bool quote = v.find_first_of(" \t\"=") != std::string::npos;
  if (!quote) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }

void LogLine(LogLevel level, const std::string& event,
             const std::vector<std::pair<std::string, std::string>>& fields) {
  if (static_cast<int>(level) < g_level) return;
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::string line = std::string(ts) + " " + Name(level) + " " + event;
  for (const auto& [k, v] : fields) {
    if (v.empty()) continue;
    line += " " + k + "=";
    AppendValue(line, v);
  }
  line += "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace sitepower::app
