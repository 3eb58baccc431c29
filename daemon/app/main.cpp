// sitepowerd: keeps base stations on air through mains outages.
// Usage: sitepowerd --config FILE [--check] [--log-level debug|info|warning|error]
#include <cstdio>
#include <cstring>
#include <string>

#include "app/config.hpp"
#include "app/daemon.hpp"
#include "app/log.hpp"

namespace {
void Usage() {
  std::fprintf(stderr,
               "usage: sitepowerd --config FILE [--check] [--log-level debug|info|warning|error]\n"
               "  --check   validate the config (and its register maps) and exit\n");
}
}  // namespace

int main(int argc, char** argv) {
  using namespace sitepower::app;
  std::string config_path;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--check") {
      check = true;
    } else if (a == "--log-level" && i + 1 < argc) {
      std::string l = argv[++i];
      SetLogLevel(l == "debug"     ? LogLevel::kDebug
                  : l == "warning" ? LogLevel::kWarning
                  : l == "error"   ? LogLevel::kError
                                   : LogLevel::kInfo);
    } else if (a == "--help" || a == "-h") {
      Usage();
      return 0;
    } else {
      std::fprintf(stderr, "sitepowerd: unknown argument '%s'\n", a.c_str());
      Usage();
      return 2;
    }
  }
  if (config_path.empty()) {
    Usage();
    return 2;
  }
  auto config = LoadConfigFile(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "sitepowerd: invalid config:\n%s\n", config.status().message().c_str());
    return 2;
  }
  if (check) {
    auto st = CheckConfig(*config);
    if (!st.ok()) {
      std::fprintf(stderr, "sitepowerd: invalid config:\n%s\n", st.message().c_str());
      return 2;
    }
    std::printf("%s: OK (%zu sites, %zu crews)\n", config_path.c_str(), config->sites.size(),
                config->crews.size());
    return 0;
  }
  return RunDaemon(*config);
}
