#include "ctl/recording_cmd.hpp"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "recording/recording.hpp"

namespace sitepower::ctl {

int RunRecordingCommand(int argc, char** argv) {
  std::string path, site;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--site" && i + 1 < argc)
      site = argv[++i];
    else if (path.empty() && a.rfind("--", 0) != 0)
      path = a;
    else {
      std::fprintf(stderr, "usage: sitepowerctl recording FILE [--site ID]\n");
      return 2;
    }
  }
  if (path.empty()) {
    std::fprintf(stderr, "usage: sitepowerctl recording FILE [--site ID]\n");
    return 2;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "sitepowerctl recording: %s: cannot open\n", path.c_str());
    return 2;
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  recording::Parsed p = recording::Parse(bytes);
  auto num = [](const std::optional<double>& v) { return v ? std::to_string(*v) : std::string(); };
  auto bit = [](const std::optional<bool>& v) { return v ? std::string(*v ? "1" : "0") : ""; };
  if (site.empty())
    std::printf("t_s,site,voltage_v,current_a,temp_c,soc,mains_ok,generator_running,lvd_open\n");
  else
    std::printf("t_s,voltage_v,current_a,temp_c,soc\n");
  for (const auto& s : p.samples) {
    if (!site.empty() && s.site != site) continue;
    double t = static_cast<double>(s.t_ms) / 1000.0;
    if (site.empty())
      std::printf("%.3f,%s,%s,%s,%s,%s,%s,%s,%s\n", t, s.site.c_str(), num(s.voltage_v).c_str(),
                  num(s.current_a).c_str(), num(s.temp_c).c_str(), num(s.soc_pct).c_str(),
                  bit(s.mains_ok).c_str(), bit(s.generator_running).c_str(),
                  bit(s.lvd_open).c_str());
    else if (s.voltage_v && s.current_a)  // the trace format needs both
      std::printf("%.3f,%s,%s,%s,%s\n", t, num(s.voltage_v).c_str(), num(s.current_a).c_str(),
                  s.temp_c ? num(s.temp_c).c_str() : "25",
                  s.soc_pct ? std::to_string(*s.soc_pct / 100).c_str() : "");
  }
  if (!p.error.empty()) {
    std::fprintf(stderr, "sitepowerctl recording: %s: %s (%zu samples before it)\n", path.c_str(),
                 p.error.c_str(), p.samples.size());
    return 1;
  }
  return 0;
}

}  // namespace sitepower::ctl
