// sitepower-crew-latency-bench: how long from the poll that confirms a mains
// failure to the task on a crew's stream, with many crews connected.
//
// Everything is real: simulated controllers (libmodbus, tools/sim) on
// loopback, the sitepowerd binary polling them, N crew clients subscribed
// over gRPC. One site at a time loses mains; the controller farm records when
// it answered the read that confirmed the failure (the second "mains lost"
// read, mains_fail_confirm = 2), the crew clients record when the ASSIGNED
// event for that site arrived. The difference is the latency, reported as
// p50/p99/max, next to the plain gRPC round trip measured the same way
// (ListMyTasks) as the baseline.
//
//   sitepower-crew-latency-bench [--crews 1000] [--sites 60] [--events 40] [--json]
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/auth.hpp"
#include "sim/controller_sim.hpp"
#include "sitepower/v1/crew.grpc.pb.h"

namespace {

using namespace sitepower;
namespace v1 = sitepower::v1;
using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

struct Received {
  std::mutex mu;
  std::map<std::string, int64_t> assigned_ns;  // site -> first ASSIGNED arrival
};

}  // namespace

int main(int argc, char** argv) {
  int crews = 1000, sites = 60, events = 40;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (a == "--crews")
      crews = next();
    else if (a == "--sites")
      sites = next();
    else if (a == "--events")
      events = next();
    else if (a == "--json")
      json = true;
    else {
      std::fprintf(stderr,
                   "usage: sitepower-crew-latency-bench [--crews N] [--sites N] [--events N] "
                   "[--json]\n");
      return 2;
    }
  }
  events = std::min(events, sites);
  const std::string bin = std::filesystem::path(argv[0]).parent_path().string();
  const std::string dir = std::filesystem::temp_directory_path().string() + "/sitepower-latency-" +
                          std::to_string(getpid());
  std::filesystem::create_directories(dir);

  sim::ControllerFarm farm;
  std::vector<int> index(sites);
  for (int i = 0; i < sites; ++i) {
    std::string err;
    index[i] = farm.Add(&err);
    if (index[i] < 0) {
      std::fprintf(stderr, "farm: %s\n", err.c_str());
      return 1;
    }
    sim::ControllerState st;
    st.voltage_v = 53.5;
    st.capacity_ah = 300;
    farm.Set(index[i], st);
  }
  farm.Start();

  // Sites on a grid around one town, crews spread among them.
  const int grpc_port = FreePort(), http_port = FreePort();
  std::ostringstream y;
  y << "name: latency-bench\nlisten: {grpc: \"127.0.0.1:" << grpc_port
    << "\", http: \"127.0.0.1:" << http_port << "\"}\nstore: " << dir
    << "/sitepower.db\nstate_file: " << dir << "/state.json\n"
    << "poll: {interval_ms: 500, on_battery_interval_ms: 500, timeout_ms: 400, "
       "mains_fail_confirm: 2}\nplanner: {budget_ms: 200, ack_timeout_min: 600}\n"
    << "noc_tokens: [{name: bench, sha256: " << api::Sha256Hex("bench-noc") << "}]\nsites:\n";
  for (int i = 0; i < sites; ++i)
    y << "  - {id: S" << i << ", location: [" << 38.9 + 0.01 * (i % 10) << ", "
      << 111.8 + 0.01 * (i / 10) << "], tier: " << (i % 7 == 0 ? "vip" : "standard")
      << ", load_w: 2000,\n     battery: {chemistry: vrla, cells: 24, capacity_ah: 300, "
         "end_v_per_cell: 1.80},\n     controller: {host: 127.0.0.1, port: "
      << farm.port(index[i]) << ", unit: 1, map: sunspec-802-plant}}\n";
  y << "crews:\n";
  for (int c = 0; c < crews; ++c)
    y << "  - {id: C" << c << ", location: [" << 38.85 + 0.0002 * (c % 500) << ", "
      << 111.75 + 0.0003 * (c / 500)
      << "], generators: 2, token_sha256: " << api::Sha256Hex("tok-" + std::to_string(c)) << "}\n";
  std::ofstream(dir + "/sitepowerd.yaml") << y.str();

  pid_t daemon = fork();
  if (daemon == 0) {
    std::string log = dir + "/sitepowerd.log";
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    (void)f;
    dup2(STDOUT_FILENO, STDERR_FILENO);
    execl((bin + "/sitepowerd").c_str(), "sitepowerd", "--config",
          (dir + "/sitepowerd.yaml").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 200 && !std::filesystem::exists(dir + "/state.json"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!std::filesystem::exists(dir + "/state.json")) {
    std::fprintf(stderr, "sitepowerd did not come up; see %s/sitepowerd.log\n", dir.c_str());
    kill(daemon, SIGKILL);
    return 1;
  }

  // N crews subscribed, over a few channels (as many phones behind a few NATs).
  const std::string target = "127.0.0.1:" + std::to_string(grpc_port);
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int k = 0; k < 8; ++k) {
    grpc::ChannelArguments args;
    args.SetInt("sitepower.bench.channel", k);  // distinct connections
    channels.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  }
  Received rx;
  std::atomic<int> subscribed{0};
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts(crews);
  std::vector<std::thread> readers;
  readers.reserve(crews);
  for (int c = 0; c < crews; ++c) {
    contexts[c] = std::make_unique<grpc::ClientContext>();
    contexts[c]->AddMetadata("authorization", "Bearer tok-" + std::to_string(c));
    readers.emplace_back([&, c]() {
      auto stub = v1::CrewService::NewStub(channels[c % channels.size()]);
      v1::SubscribeTasksRequest req;
      req.set_crew_id("C" + std::to_string(c));
      auto reader = stub->SubscribeTasks(contexts[c].get(), req);
      ++subscribed;
      v1::TaskEvent ev;
      while (reader->Read(&ev)) {
        if (ev.kind() != v1::TaskEvent::KIND_ASSIGNED) continue;
        int64_t now = NowNs();
        std::lock_guard<std::mutex> lock(rx.mu);
        rx.assigned_ns.emplace(ev.task().site_id(), now);
      }
      reader->Finish();
    });
  }
  while (subscribed < crews) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::seconds(2));  // streams open, first polls done

  // Baseline: a unary gRPC round trip on the same server.
  std::vector<double> rtt_ms;
  {
    auto stub = v1::CrewService::NewStub(channels[0]);
    for (int i = 0; i < 200; ++i) {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer tok-0");
      v1::ListMyTasksRequest req;
      req.set_crew_id("C0");
      v1::ListMyTasksResponse resp;
      int64_t t0 = NowNs();
      stub->ListMyTasks(&ctx, req, &resp);
      rtt_ms.push_back((NowNs() - t0) / 1e6);
    }
  }

  std::vector<double> latency_ms, from_flip_ms;
  int missed = 0;
  for (int e = 0; e < events; ++e) {
    const int site = index[e];
    uint64_t before = farm.Stats(site).di_replies;
    sim::ControllerState st;
    st.voltage_v = 50.5;
    st.current_a = 40;
    st.capacity_ah = 300;
    st.soc_pct = 97;
    st.mains_ok = false;
    int64_t flip = NowNs();
    farm.Set(site, st);
    const std::string id = "S" + std::to_string(e);
    int64_t got = 0;
    for (int w = 0; w < 1000 && !got; ++w) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      std::lock_guard<std::mutex> lock(rx.mu);
      if (auto it = rx.assigned_ns.find(id); it != rx.assigned_ns.end()) got = it->second;
    }
    auto stats = farm.Stats(site);
    if (!got || stats.di_replies < before + 2) {
      ++missed;
    } else {
      // The confirming read is the second one answered after the flip.
      int64_t confirm = farm.DiReplyNs(site, before + 2);
      latency_ms.push_back((got - confirm) / 1e6);
      from_flip_ms.push_back((got - flip) / 1e6);
    }
    // Let the burst window close so the next failure is a fresh event.
    std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  }

  for (auto& ctx : contexts) ctx->TryCancel();
  for (auto& t : readers) t.join();
  kill(daemon, SIGTERM);
  waitpid(daemon, nullptr, 0);
  farm.Stop();

  double p50 = Quantile(latency_ms, 0.5), p99 = Quantile(latency_ms, 0.99),
         mx = Quantile(latency_ms, 1.0);
  double rtt50 = Quantile(rtt_ms, 0.5), rtt99 = Quantile(rtt_ms, 0.99);
  if (json) {
    std::printf(
        "{\"crews\": %d, \"sites\": %d, \"events\": %zu, \"missed\": %d, "
        "\"confirm_to_stream_ms\": {\"p50\": %.2f, \"p99\": %.2f, \"max\": %.2f}, "
        "\"flip_to_stream_ms\": {\"p50\": %.1f, \"p99\": %.1f}, "
        "\"baseline_unary_rtt_ms\": {\"p50\": %.2f, \"p99\": %.2f}}\n",
        crews, sites, latency_ms.size(), missed, p50, p99, mx, Quantile(from_flip_ms, 0.5),
        Quantile(from_flip_ms, 0.99), rtt50, rtt99);
  } else {
    std::printf("%d crews connected, %d sites, %zu mains failures (%d missed)\n", crews, sites,
                latency_ms.size(), missed);
    std::printf(
        "confirming poll -> task on the crew's stream: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
        p50, p99, mx);
    std::vector<double> sorted = latency_ms;
    std::sort(sorted.begin(), sorted.end());
    std::printf("  each, sorted (ms):");
    for (double v : sorted) std::printf(" %.0f", v);
    std::printf("\n");
    std::printf(
        "mains lost at the controller -> task on stream: p50 %.0f ms, p99 %.0f ms "
        "(two polls at 500 ms)\n",
        Quantile(from_flip_ms, 0.5), Quantile(from_flip_ms, 0.99));
    std::printf("baseline, a unary gRPC round trip: p50 %.2f ms, p99 %.2f ms (p99 ratio %.1fx)\n",
                rtt50, rtt99, p99 / rtt99);
  }
  if (missed || std::getenv("SITEPOWER_BENCH_KEEP"))
    std::fprintf(stderr, "kept %s for a look (sitepowerd.log)\n", dir.c_str());
  else
    std::filesystem::remove_all(dir);
  return missed ? 1 : 0;
}
