// sitepower-farm: simulated controllers for benchmarks, run on their own so a
// poller (sitepower-pollbench, or anybody's) can be measured from outside.
//   sitepower-farm --ports 15000-15099 --units-per-port 100 [--latency-ms 50]
//                  [--faulty-pct 20] [--seed N] [--threads N] [--plant 0|1]
// --plant 1 serves the sunspec-802-plant extension; by default every unit is
// a standard SunSpec 802 device (map sunspec-802).
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "farm/farm.hpp"

int main(int argc, char** argv) {
  using namespace sitepower;
  farm::FarmOptions o;
  int threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--ports") {
      auto dash = v.find('-');
      int p1 = std::atoi(v.substr(0, dash).c_str());
      int p2 = dash == std::string::npos ? p1 : std::atoi(v.substr(dash + 1).c_str());
      o.first_port = static_cast<uint16_t>(p1);
      o.ports = p2 - p1 + 1;
    } else if (a == "--units-per-port") {
      o.units_per_port = std::atoi(v.c_str());
    } else if (a == "--latency-ms") {
      o.latency_ms = std::atoi(v.c_str());
    } else if (a == "--faulty-pct") {
      o.faulty_fraction = std::atof(v.c_str()) / 100;
    } else if (a == "--seed") {
      o.seed = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--plant") {
      o.plant_extension = v == "1";
    } else if (a == "--threads") {
      threads = std::max(1, std::atoi(v.c_str()));
    } else {
      std::fprintf(stderr,
                   "usage: sitepower-farm --ports P1-P2 --units-per-port U [--latency-ms L] "
                   "[--faulty-pct F] [--seed N] [--threads N] [--plant 0|1]\n");
      return 2;
    }
  }
  if (argc % 2 == 0 || o.ports < 1 || o.units_per_port < 1 || o.units_per_port > 247) {
    std::fprintf(stderr,
                 "sitepower-farm: --ports P1-P2 and --units-per-port 1..247 are required\n");
    return 2;
  }
  boost::asio::io_context io;
  farm::Farm f(io, o);
  if (auto st = f.Start(); !st.ok()) {
    std::fprintf(stderr, "sitepower-farm: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("farm: %d ports from %u, %d units each, latency %d ms, %.0f %% faulty\n", o.ports,
              f.ports().front(), o.units_per_port, o.latency_ms, o.faulty_fraction * 100);
  std::fflush(stdout);
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    f.Stop();
    io.stop();
  });
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back([&io]() { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  return 0;
}
