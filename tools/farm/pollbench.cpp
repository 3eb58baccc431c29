// sitepower-pollbench: the daemon's real poller (modbus::Poller, not a copy)
// against a site farm, every unit id on every port one site, SunSpec
// discovery and the 802 block included. Reports reads/s (Modbus requests
// answered, discovery included), poller CPU per 1000 reads (the poller
// thread's CPU time, system calls included), the requests in flight, p50/p99
// poll age of the healthy sites, peak memory; next to a blocking libmodbus
// loop measured in the same process.
//
//   sitepower-pollbench [--farm HOST:PORT-PORT | --ports N] [--units-per-port U]
//       [--latency-ms L] [--faulty-pct F] [--map sunspec-802] [--interval-s S]
//       [--in-flight N] [--coalesce-ms C] [--seconds T] [--json]
// Without --farm it runs its own farm (tools/farm) on a second thread.
// --interval-s 0 polls every site back to back (every site always in
// flight); --in-flight N is the gateway's pipelining depth (default: the
// map's max_in_flight); --coalesce-ms C runs the poller's event loop with
// modbus::RunCoalesced (one wake-up for the events of C ms; default 5, as
// sitepowerd with poll.coalesce_ms: 5; 0: io.run()).
#include <modbus/modbus.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/time.hpp"
#include "farm/farm.hpp"
#include "modbus/poller.hpp"
#include "modbus/register_map.hpp"

namespace {

using namespace sitepower;
using Clock = std::chrono::steady_clock;

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

// A JSON number, or null for a figure that could not be measured (NaN,
// infinity): never `nan`, which is not JSON.
std::string Json(double v, int decimals) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

double ProcessCpuSeconds() {  // user + system, every thread
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double Quantile(std::vector<double>& v, double q) {
  if (v.empty()) return NAN;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(q * v.size()));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

int Usage() {
  std::fprintf(
      stderr,
      "usage: sitepower-pollbench [--farm HOST:PORT-PORT | --ports N] [--units-per-port U]\n"
      "         [--latency-ms L] [--faulty-pct F] [--map NAME] [--interval-s S]\n"
      "         [--in-flight N] [--coalesce-ms C] [--seconds T] [--json]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string farm_spec, map_name = "sunspec-802";
  int ports = 10, units = 100, latency_ms = 50, in_flight = 0;
  double faulty_pct = 0, interval_s = 30, seconds = 20, coalesce_ms = 5;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--json") {
      json = true;
      continue;
    }
    if (!(v = next())) return Usage();
    if (a == "--farm")
      farm_spec = v;
    else if (a == "--ports")
      ports = std::atoi(v);
    else if (a == "--units-per-port")
      units = std::atoi(v);
    else if (a == "--latency-ms")
      latency_ms = std::atoi(v);
    else if (a == "--faulty-pct")
      faulty_pct = std::atof(v);
    else if (a == "--in-flight")
      in_flight = std::atoi(v);
    else if (a == "--map")
      map_name = v;
    else if (a == "--interval-s")
      interval_s = std::atof(v);
    else if (a == "--seconds")
      seconds = std::atof(v);
    else if (a == "--coalesce-ms")
      coalesce_ms = std::atof(v);
    else
      return Usage();
  }
  if (coalesce_ms < 0 || coalesce_ms > 100) return Usage();
  if (units < 1 || units > 247 || ports < 1 || interval_s < 0 || seconds <= 0 || in_flight < 0 ||
      in_flight > 255)
    return Usage();

  // The farm: someone else's, or our own on a second thread.
  std::string host = "127.0.0.1";
  std::vector<uint16_t> farm_ports;
  boost::asio::io_context farm_io;
  std::unique_ptr<farm::Farm> own_farm;
  std::thread farm_thread;
  if (!farm_spec.empty()) {
    auto colon = farm_spec.rfind(':'), dash = farm_spec.rfind('-');
    if (colon == std::string::npos || dash == std::string::npos || dash < colon) return Usage();
    host = farm_spec.substr(0, colon);
    int p1 = std::atoi(farm_spec.substr(colon + 1, dash - colon - 1).c_str());
    int p2 = std::atoi(farm_spec.substr(dash + 1).c_str());
    for (int p = p1; p <= p2; ++p) farm_ports.push_back(static_cast<uint16_t>(p));
  } else {
    farm::FarmOptions fo;
    fo.ports = ports;
    fo.units_per_port = units;
    fo.latency_ms = latency_ms;
    fo.faulty_fraction = faulty_pct / 100;
    fo.plant_extension = map_name == "sunspec-802-plant";  // else standard SunSpec devices
    own_farm = std::make_unique<farm::Farm>(farm_io, fo);
    if (auto st = own_farm->Start(); !st.ok()) {
      std::fprintf(stderr, "pollbench: %s\n", st.ToString().c_str());
      return 1;
    }
    farm_ports = own_farm->ports();
    farm_thread = std::thread([&farm_io]() {
      auto guard = boost::asio::make_work_guard(farm_io);
      farm_io.run();
    });
  }

  auto maps = modbus::MapRegistry::Load("");
  if (!maps.ok() || !maps->Find(map_name)) {
    std::fprintf(stderr, "pollbench: no map '%s'\n", map_name.c_str());
    return 2;
  }
  if (in_flight > 0) {  // the gateway's pipelining depth, not the map's default
    modbus::RegisterMap m = *maps->Find(map_name);
    m.max_in_flight = in_flight;
    maps->Add(std::move(m));
  }
  const size_t blocks = maps->Find(map_name)->blocks.size();
  const int limit = maps->Find(map_name)->max_in_flight;

  // The poller, on this thread's io_context.
  boost::asio::io_context io(1);  // run by this thread only, as in sitepowerd
  core::SystemClock clock;
  modbus::PollerOptions po;
  po.interval = core::Millis(static_cast<long>(interval_s * 1000));
  po.on_battery_interval = po.interval;
  po.timeout = core::Millis(std::max(1000, 10 * latency_ms));
  struct Site {
    Clock::time_point last_ok{};
    bool healthy = true;
    bool polled = false;  // its first poll (after discovery) is done
  };
  size_t first_polls = 0;  // sites whose first poll is done
  std::vector<Site> state;
  std::unordered_map<std::string, size_t> index;
  // Polls in the measured window; those that failed during the warm-up
  // (discovery under a burst) apart.
  uint64_t polls_ok = 0, polls_failed = 0, warmup_polls_failed = 0;
  bool measuring = false;
  std::vector<std::string> first_errors;  // to stderr at the end: why polls failed
  modbus::Poller poller(io, clock, *maps, po,
                        [&](const core::SiteId& id, const modbus::Reading& r) {
                          auto it = index.find(id);
                          if (it == index.end()) return;
                          if (!state[it->second].polled) {
                            state[it->second].polled = true;
                            ++first_polls;
                          }
                          if (r.poll_ok) {
                            polls_ok += measuring;
                            state[it->second].last_ok = Clock::now();
                          } else {
                            ++(measuring ? polls_failed : warmup_polls_failed);
                            if (!own_farm) state[it->second].healthy = false;
                            if (first_errors.size() < 3) first_errors.push_back(r.error);
                          }
                        });
  for (size_t p = 0; p < farm_ports.size(); ++p)
    for (int u = 1; u <= units; ++u) {
      std::string id = "P" + std::to_string(farm_ports[p]) + "U" + std::to_string(u);
      index[id] = state.size();
      Site s;
      if (own_farm) s.healthy = own_farm->FaultOf(static_cast<int>(p), u) == farm::UnitFault::kNone;
      state.push_back(s);
      if (auto st = poller.AddDevice(modbus::DeviceSpec::Tcp(id, host, farm_ports[p], u, map_name));
          !st.ok()) {
        std::fprintf(stderr, "pollbench: %s\n", st.ToString().c_str());
        return 1;
      }
    }
  const auto start = Clock::now();
  // Warm-up: at least one interval (and 2 s), and until every site has had
  // its first poll (SunSpec discovery included; a loaded machine needs
  // longer), at most 10 intervals. Then `seconds` are measured.
  const double warmup_s = std::max(2.0, interval_s);
  const double warmup_max_s = std::max(20.0, 10 * interval_s);
  for (auto& s : state) s.last_ok = start;  // age counts from the start until the first poll
  // Poll ages and what is in flight, sampled once a second while measuring.
  std::vector<double> ages;
  double in_flight_sum = 0, requests_sum = 0;
  int in_flight_samples = 0;
  boost::asio::steady_timer sampler(io), end(io), warm(io);
  std::function<void()> sample = [&]() {
    sampler.expires_after(std::chrono::seconds(1));
    sampler.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      auto now = Clock::now();
      if (measuring) {
        const modbus::PollerStats ps = poller.stats();
        in_flight_sum += static_cast<double>(ps.polls_under_way);
        requests_sum += static_cast<double>(ps.outstanding);
        ++in_flight_samples;
        for (const auto& s : state)
          if (s.healthy) ages.push_back(std::chrono::duration<double>(now - s.last_ok).count());
      }
      sample();
    });
  };
  sample();
  // Measured from the end of the warm-up to the end: CPU of this thread and
  // of the process (system calls included), requests answered, wall time.
  double cpu_from = 0, process_cpu_from = 0, warmup_took_s = 0;
  uint64_t answers_from = 0;
  Clock::time_point measured_from{};
  double cpu = 0, process_cpu = 0, wall = 0, reads = 0;
  std::function<void()> finish = [&]() {
    end.expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::duration<double>(seconds)));
    end.async_wait([&](const boost::system::error_code&) {
      sampler.cancel();
      cpu = ThreadCpuSeconds() - cpu_from;
      process_cpu = ProcessCpuSeconds() - process_cpu_from;
      reads = static_cast<double>(poller.stats().answers - answers_from);
      wall = std::chrono::duration<double>(Clock::now() - measured_from).count();
      poller.Stop();
      io.stop();
    });
  };
  std::function<void(double)> warm_up = [&](double after_s) {
    warm.expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::duration<double>(after_s)));
    warm.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      const double took = std::chrono::duration<double>(Clock::now() - start).count();
      if (first_polls < state.size() && took < warmup_max_s) return warm_up(0.25);
      warmup_took_s = took;
      measuring = true;
      cpu_from = ThreadCpuSeconds();
      process_cpu_from = ProcessCpuSeconds();
      answers_from = poller.stats().answers;
      measured_from = Clock::now();
      finish();
    });
  };
  warm_up(warmup_s);
  poller.Start();
  modbus::RunCoalesced(io, std::chrono::microseconds(static_cast<long>(coalesce_ms * 1000)));
  const double in_flight_mean = in_flight_samples ? in_flight_sum / in_flight_samples : 0;
  const double requests_mean = in_flight_samples ? requests_sum / in_flight_samples : 0;

  // Baseline: a blocking libmodbus loop, in this process, on the same farm.
  double lm_us = NAN;
  int lm_reads = 0;
  {
    modbus_t* ctx = modbus_new_tcp(host.c_str(), farm_ports.front());
    if (ctx && modbus_connect(ctx) == 0) {
      modbus_set_slave(ctx, 1);
      modbus_set_response_timeout(ctx, 2, 0);
      uint16_t regs[125];
      uint8_t bits[2000];
      auto read = [ctx, &regs, &bits](const modbus::ReadBlock& b) {
        switch (b.fc) {
          case modbus::Function::kReadCoils:
            return modbus_read_bits(ctx, b.address, b.count, bits);
          case modbus::Function::kReadDiscreteInputs:
            return modbus_read_input_bits(ctx, b.address, b.count, bits);
          case modbus::Function::kReadInputRegisters:
            return modbus_read_input_registers(ctx, b.address, b.count, regs);
          case modbus::Function::kReadHoldingRegisters:
            break;
        }
        return modbus_read_registers(ctx, b.address, b.count, regs);
      };
      // The first of the map's blocks the device answers (a standard device
      // refuses a plant map's extension blocks).
      const modbus::ReadBlock* block = nullptr;
      for (const auto& b : maps->Find(map_name)->blocks)
        if (!block && read(b) >= 0) block = &b;
      const double c0 = ThreadCpuSeconds();
      const auto t0 = Clock::now();
      while (block && lm_reads < 2000 && Clock::now() - t0 < std::chrono::seconds(5)) {
        if (read(*block) < 0) break;
        ++lm_reads;
      }
      if (lm_reads) lm_us = (ThreadCpuSeconds() - c0) / lm_reads * 1e6;
      modbus_close(ctx);
    }
    if (ctx) modbus_free(ctx);
  }
  if (own_farm) {
    own_farm->Stop();
    farm_io.stop();
    farm_thread.join();
  }
  for (const std::string& e : first_errors)
    std::fprintf(stderr, "pollbench: failed poll: %s\n", e.c_str());
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double peak_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;
  const double p50 = Quantile(ages, 0.5), p99 = Quantile(ages, 0.99);
  const double us_per_read = reads > 0 ? cpu / reads * 1e6 : NAN;
  // The whole process (with its own farm: the farm's thread too).
  const double process_us_per_read = reads > 0 ? process_cpu / reads * 1e6 : NAN;
  if (json) {
    const double wall_reads = wall > 0 ? reads / wall : NAN;
    const double per_1000 = reads > 0 ? cpu / reads * 1000 : NAN;
    std::printf(
        "{\"sites\": %zu, \"ports\": %zu, \"units_per_port\": %d, \"latency_ms\": %s, "
        "\"faulty_pct\": %s, \"interval_s\": %.1f, \"seconds\": %.1f, \"polls_ok\": %llu, "
        "\"polls_failed\": %llu, \"warmup_polls_failed\": %llu, \"reads_per_s\": %s, "
        "\"cpu_s_per_1000_reads\": %s, "
        "\"us_per_read\": %s, \"process_us_per_read\": %s, \"warmup_s\": %.1f, "
        "\"sites_in_flight_mean\": %.0f, "
        "\"requests_outstanding_mean\": %.0f, \"in_flight_limit\": %d, \"coalesce_ms\": %s, "
        "\"poll_age_s\": {\"p50\": %s, \"p99\": %s}, "
        "\"peak_rss_mib\": %.0f, \"farm_in_process\": %s, "
        "\"baseline_libmodbus_us_per_read\": %s, \"baseline_reads\": %d, "
        "\"ratio_to_baseline\": %s}\n",
        state.size(), farm_ports.size(), units,
        own_farm ? std::to_string(latency_ms).c_str() : "null",  // someone else's farm: unknown
        own_farm ? Json(faulty_pct, 1).c_str() : "null", interval_s, seconds,
        static_cast<unsigned long long>(polls_ok), static_cast<unsigned long long>(polls_failed),
        static_cast<unsigned long long>(warmup_polls_failed), Json(wall_reads, 0).c_str(),
        Json(per_1000, 4).c_str(), Json(us_per_read, 2).c_str(),
        Json(process_us_per_read, 2).c_str(), warmup_took_s, in_flight_mean, requests_mean, limit,
        Json(coalesce_ms, 1).c_str(), Json(p50, 2).c_str(), Json(p99, 2).c_str(), peak_mib,
        own_farm ? "true" : "false", Json(lm_us, 2).c_str(), lm_reads,
        Json(us_per_read / lm_us, 3).c_str());
  } else {
    std::printf("%zu sites (%zu ports x %d units), %s farm, latency %d ms, %.0f %% faulty\n",
                state.size(), farm_ports.size(), units, own_farm ? "in-process" : "external",
                latency_ms, faulty_pct);
    std::printf(
        "polls: %llu ok, %llu failed in %.0f s (%llu failed in the warm-up); %.0f reads/s (%zu "
        "blocks a poll)\n",
        static_cast<unsigned long long>(polls_ok), static_cast<unsigned long long>(polls_failed),
        wall, static_cast<unsigned long long>(warmup_polls_failed), reads / wall, blocks);
    std::printf(
        "poller CPU: %.3f s per 1000 reads (%.2f us per read; process %.2f us; warm-up %.1f s)\n",
        cpu / reads * 1000, us_per_read, process_us_per_read, warmup_took_s);
    std::printf(
        "in flight: %.0f sites on average (%.0f requests queued or on the wire; pipeline "
        "depth %d a connection)\n",
        in_flight_mean, requests_mean, limit);
    std::printf("poll age of healthy sites (interval %.0f s): p50 %.2f s, p99 %.2f s\n", interval_s,
                p50, p99);
    std::printf("peak memory: %.0f MiB (process%s)\n", peak_mib, own_farm ? ", farm included" : "");
    std::printf("baseline, blocking libmodbus loop: %.2f us CPU per read (%d reads); ratio %.2f\n",
                lm_us, lm_reads, us_per_read / lm_us);
  }
  return 0;
}
