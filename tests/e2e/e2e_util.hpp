// Helpers of the end-to-end tests: run a command, a fresh work directory, a
// JSON report.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace sitepower::e2e {

struct Result {
  int code = -1;    // exit code, -1 if it did not exit normally
  std::string out;  // stdout and stderr
};

inline Result Exec(const std::string& cmd) {
  Result r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// An empty directory of this test process (removed first if it exists).
inline std::string TempDir(const std::string& name) {
  namespace fs = std::filesystem;
  auto d = fs::temp_directory_path() / ("sp-e2e-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// The file's JSON, or a discarded value when it is missing or broken.
inline nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, false);
}

}  // namespace sitepower::e2e
