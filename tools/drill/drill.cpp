#include "drill/drill.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "api/auth.hpp"
#include "core/shared_clock.hpp"
#include "drill/crew_sim.hpp"
#include "drill/drill_replay.hpp"
#include "drill/noc_watch.hpp"
#include "modbus/register_map.hpp"
#include "sim/battery_sim.hpp"
#include "sim/controller_sim.hpp"
#include "sim/controllers.hpp"
#include "ydt1363/point_map.hpp"

namespace sitepower::drill {

namespace fs = std::filesystem;
using json = nlohmann::json;
using scenario::Scenario;

namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

std::string RandomHex(size_t n) {
  std::random_device rd;
  std::string s;
  static const char* kHex = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) s += kHex[rd() % 16];
  return s;
}

std::optional<core::TimePoint> ChaosTime(const std::string& hhmm, const Scenario& s) {
  auto t = core::ParseHhMmOn(hhmm, s.start);
  if (!t.ok()) return std::nullopt;
  return *t;
}

// A whole string as a number, or nullopt (no exceptions, no trailing junk).
std::optional<double> Number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v) || v < 0) return std::nullopt;
  return v;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, sep)) out.push_back(part);
  return out;
}

// A site's plant in the drill: its battery and what the controller shows.
struct SimSite {
  const scenario::Site* site = nullptr;
  int farm_index = -1;
  std::unique_ptr<sim::BatterySim> battery;  // null for runtime_min sites
  double true_runtime_min = 0;
  std::optional<core::TimePoint> failed_at, restored_at, empty_at, generator_at;
  std::string crew;
  std::unique_ptr<ReplayedSite> replay;  // set when the recording has this site
  sim::Fault fault = sim::Fault::kNone;  // the scenario's controller_fault now
  sim::Fault shown_fault = sim::Fault::kNone;
  bool carried() const {
    return !failed_at || restored_at.has_value() || generator_at.has_value() ||
           site->fixed_generator;
  }
};

class DaemonProcess {
 public:
  DaemonProcess(std::string binary, std::string config, std::string log)
      : binary_(std::move(binary)), config_(std::move(config)), log_(std::move(log)) {}
  ~DaemonProcess() { Stop(); }
  bool Start() {
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // A drill that dies (killed, crashed) takes its daemon with it (SIGTERM:
      // it still flushes its store and recording) instead of orphaning it.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(0);
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execl(binary_.c_str(), binary_.c_str(), "--config", config_.c_str(), nullptr);
      _exit(127);
    }
    return pid_ > 0;
  }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    Kill();
  }
  bool Alive() { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  std::string binary_, config_, log_;
  pid_t pid_ = -1;
};

std::string DaemonConfig(const Scenario& s, const DrillOptions& o, const std::string& dir,
                         int grpc_port, int http_port, core::TimePoint wall_start,
                         const std::map<std::string, SimSite>& sites, sim::Controllers& farm,
                         const std::map<std::string, std::string>& crew_tokens,
                         const std::string& noc_token) {
  // Poll once per scenario minute on battery (every two on mains), within sane wall limits.
  int on_batt_ms = std::clamp(static_cast<int>(60000 / o.speed), 100, 10000);
  std::ostringstream y;
  y << "name: " << s.name << "\n";
  y << "listen: {grpc: \"127.0.0.1:" << grpc_port << "\", http: \"127.0.0.1:" << http_port
    << "\"}\n";
  y << "store: " << dir << "/sitepower.db\n";
  y << "state_file: " << dir << "/state.json\n";
  y << "clock: {scenario_start: \"" << core::FormatIso8601(s.start.at, s.offset_min())
    << "\", wall_start_unix_ms: " << wall_start.time_since_epoch().count() << ", speed: " << o.speed
    << ", shared_file: \"" << dir << "/clock\"}\n";
  y << "poll: {interval_ms: " << on_batt_ms * 2 << ", on_battery_interval_ms: " << on_batt_ms
    << ", timeout_ms: " << std::clamp(on_batt_ms, 200, 1500)
    << ", stale_after_missed: 3, mains_fail_confirm: 2}\n";
  y << "weights: {vip: " << s.weights.vip << ", key: " << s.weights.key
    << ", standard: " << s.weights.standard << "}\n";
  y << "travel: {speed_kmh: " << s.travel.speed_kmh << ", road_factor: " << s.travel.road_factor
    << "}\n";
  y << "hookup_min: " << s.hookup_min << "\n";
  y << "planner: {policy: " << o.policy
    << ", budget_ms: 200, keep_margin_min: 10, ack_timeout_min: 10}\n";
  y << "noc_tokens:\n  - {name: drill-noc, sha256: " << api::Sha256Hex(noc_token) << "}\n";
  if (o.tls) y << "tls: {cert: " << dir << "/tls-cert.pem, key: " << dir << "/tls-key.pem}\n";
  if (!o.record_path.empty())
    y << "recording: \"" << fs::absolute(o.record_path).string() << "\"\n";
  y << "sites:\n";
  for (const auto& site : s.sites) {
    const SimSite& ss = sites.at(site.id);
    y << "  - id: \"" << site.id << "\"\n    name: \"" << site.name << "\"\n    grid: \""
      << site.grid << "\"\n    location: [" << site.location.lat << ", " << site.location.lon
      << "]\n    tier: " << core::TierName(site.tier) << "\n    feeds: [";
    for (size_t i = 0; i < site.feeds.size(); ++i)
      y << (i ? ", " : "") << "\"" << site.feeds[i] << "\"";
    y << "]\n    load_w: " << site.load_w << "\n    hookup_min: " << s.HookupMin(site) << "\n";
    if (site.battery) {
      const auto& b = *site.battery;
      y << "    battery: {chemistry: " << core::ChemistryName(b.chemistry) << ", cells: " << b.cells
        << ", capacity_ah: " << b.capacity_ah << ", rated_hours: " << b.rated_hours
        << ", strings: " << b.strings << ", soh: " << b.soh << ", soc: " << b.soc
        << ", temp_c: " << b.temp_c << ", end_v_per_cell: " << b.end_v_per_cell << "}\n";
    }
    if (site.fixed_generator) y << "    generator: fixed\n";
    const bool ydt = site.controller.protocol == "ydt1363";
    y << "    controller: {host: 127.0.0.1, port: " << farm.port(ss.farm_index)
      << (ydt ? ", protocol: ydt1363, adr: " : ", unit: ") << site.controller.unit
      << ", map: " << site.controller.map << "}\n";
  }
  y << "crews:\n";
  for (const auto& c : s.crews) {
    y << "  - id: \"" << c.id << "\"\n    grid: \"" << c.grid << "\"\n    location: ["
      << c.location.lat << ", " << c.location.lon << "]\n    generators: " << c.generators << "\n";
    if (c.speed_kmh) y << "    speed_kmh: " << *c.speed_kmh << "\n";
    y << "    token_sha256: " << api::Sha256Hex(crew_tokens.at(c.id)) << "\n";
  }
  std::string path = dir + "/sitepowerd.yaml";
  std::ofstream(path) << y.str();
  return path;
}

std::optional<json> ReadStateFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  json j = json::parse(in, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

json EventJson(const scenario::Event& e, const Scenario& s) {
  json j = {{"at", core::FormatIso8601(e.at, s.offset_min())}};
  std::visit(
      [&j](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, scenario::DaemonKill>)
          j["daemon_kill"] = {{"restart_after_s", b.restart_after_s}};
        else if constexpr (std::is_same_v<T, scenario::ControllerFault>)
          j["controller_fault"] = {
              {"site", b.site}, {"kind", scenario::FaultKindName(b.kind)}, {"for_min", b.for_min}};
        else if constexpr (std::is_same_v<T, scenario::CrewUnavailable>)
          j["crew_unavailable"] = b.crew;
        else if constexpr (std::is_same_v<T, scenario::CrewLinkCut>)
          j["crew_link_cut"] = {{"crew", b.crew}, {"for_min", b.for_min}};
      },
      e.body);
  return j;
}

sim::Fault ToSimFault(scenario::FaultKind k) {
  switch (k) {
    case scenario::FaultKind::kTimeout:
      return sim::Fault::kTimeout;
    case scenario::FaultKind::kException:
      return sim::Fault::kException;
    case scenario::FaultKind::kGarbage:
      return sim::Fault::kGarbage;
    case scenario::FaultKind::kHalfOpen:
      return sim::Fault::kHalfOpen;
  }
  return sim::Fault::kNone;
}

// One tick of a site the scenario simulates: its battery, mains per the
// scenario's events, a generator once a crew brought it.
sim::ControllerState StepSimulated(SimSite& ss, core::TimePoint now, double dt_s) {
  const bool carried = ss.carried();
  if (ss.battery) {
    for (double left = dt_s; left > 1e-9; left -= 10)
      ss.battery->Step(std::min(left, 10.0), carried);
  }
  if (ss.failed_at && !carried && !ss.empty_at) {
    bool empty = ss.battery ? ss.battery->empty()
                            : now >= *ss.failed_at + core::FromMinutes(ss.true_runtime_min);
    if (empty) ss.empty_at = now;
  }
  sim::ControllerState st;
  if (ss.battery) {
    st.voltage_v =
        carried && !ss.failed_at ? 2.23 * ss.site->battery->cells : ss.battery->voltage_v();
    st.current_a = ss.battery->current_a();
    st.soc_pct = ss.battery->soc_pct();
    st.temp_c = ss.battery->temp_c();
    st.capacity_ah = ss.site->battery->capacity_ah * ss.site->battery->strings;
    st.lvd_v = ss.site->battery->end_v_per_cell * ss.site->battery->cells;
  }
  st.mains_ok = !ss.failed_at || (ss.restored_at && *ss.restored_at <= now);
  st.generator_running = (ss.generator_at.has_value() && !st.mains_ok) ||
                         (ss.site->fixed_generator && ss.failed_at && !st.mains_ok);
  st.lvd_open = ss.empty_at.has_value() && !carried;
  return st;
}

// One tick of a replayed site (replayed_site.hpp); its controller is silent
// in the recording's holes and during the scenario's own faults.
sim::ControllerState StepReplayed(SimSite& ss, core::TimePoint now, double dt_s,
                                  sim::Controllers& farm) {
  ReplayedSite::Shown shown = ss.replay->Step(now, dt_s, ss.generator_at);
  sim::ControllerState st = shown.state;
  if (ss.site->fixed_generator && ss.failed_at && !st.mains_ok) st.generator_running = true;
  if (ss.failed_at && !ss.empty_at && ss.replay->empty_at()) ss.empty_at = ss.replay->empty_at();
  const sim::Fault fault =
      shown.source == ReplayedSite::Source::kSilent ? sim::Fault::kTimeout : ss.fault;
  if (fault != ss.shown_fault) {
    farm.SetFault(ss.farm_index, fault);
    ss.shown_fault = fault;
  }
  return st;
}

}  // namespace

core::Result<scenario::Event> ParseChaos(const std::string& spec, const Scenario& s) {
  auto at = spec.find('@');
  if (at == std::string::npos)
    return core::Status::InvalidArgument("--chaos " + spec + ": expected KIND@HH:MM[:ARGS]");
  std::string kind = spec.substr(0, at);
  auto parts = Split(spec.substr(at + 1), ':');
  if (parts.size() < 2)
    return core::Status::InvalidArgument("--chaos " + spec + ": expected KIND@HH:MM[:ARGS]");
  auto t = ChaosTime(parts[0] + ":" + parts[1], s);
  if (!t) return core::Status::InvalidArgument("--chaos " + spec + ": bad time");
  std::vector<std::string> args(parts.begin() + 2, parts.end());
  scenario::Event e;
  e.at = *t;
  auto bad = [&spec](const char* want) {
    return core::Status::InvalidArgument("--chaos " + spec + ": expected " + want);
  };
  if (kind == "daemon_kill") {
    auto after = args.empty() ? std::optional<double>(0) : Number(args[0]);
    if (args.size() > 1 || !after)
      return bad("daemon_kill@HH:MM[:RESTART_AFTER_S] (seconds, a number)");
    e.body = scenario::DaemonKill{*after};
  } else if (kind == "controller_fault") {
    if (args.size() != 3) return bad("controller_fault@HH:MM:SITE:KIND:FOR_MIN");
    if (!s.FindSite(args[0]))
      return core::Status::InvalidArgument("--chaos " + spec + ": unknown site " + args[0]);
    std::map<std::string, scenario::FaultKind> kinds = {
        {"timeout", scenario::FaultKind::kTimeout},
        {"exception", scenario::FaultKind::kException},
        {"garbage", scenario::FaultKind::kGarbage},
        {"half_open", scenario::FaultKind::kHalfOpen}};
    auto for_min = Number(args[2]);
    if (!kinds.count(args[1])) return bad("a fault kind timeout|exception|garbage|half_open");
    if (!for_min) return bad("FOR_MIN as a number of minutes");
    e.body = scenario::ControllerFault{args[0], kinds[args[1]], *for_min};
  } else if (kind == "crew_unavailable") {
    if (args.size() != 1 || !s.FindCrew(args[0]))
      return bad("crew_unavailable@HH:MM:CREW with a known crew");
    e.body = scenario::CrewUnavailable{args[0]};
  } else if (kind == "crew_link_cut") {
    auto for_min = args.size() == 2 ? Number(args[1]) : std::nullopt;
    if (!for_min || !s.FindCrew(args[0]))
      return bad("crew_link_cut@HH:MM:CREW:FOR_MIN with a known crew");
    e.body = scenario::CrewLinkCut{args[0], *for_min};
  } else {
    return core::Status::InvalidArgument("--chaos " + spec + ": unknown kind '" + kind + "'");
  }
  return e;
}

namespace {

// SIGINT/SIGTERM end the drill early, through the normal end (daemon stopped,
// report written, temp dir removed).
std::atomic<bool> g_interrupted{false};
void OnInterrupt(int) { g_interrupted = true; }

// Removes the drill's own temp dir (not a --keep-dir) when the drill returns.
struct TempDirGuard {
  std::string dir;
  ~TempDirGuard() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

}  // namespace

int RunDrill(const DrillOptions& o) {
  auto loaded = scenario::LoadScenarioFile(o.scenario_path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "sitepower-drill: invalid scenario:\n%s\n",
                 loaded.status().message().c_str());
    return 2;
  }
  Scenario s = std::move(*loaded);
  for (const auto& spec : o.chaos) {
    auto e = ParseChaos(spec, s);
    if (!e.ok()) {
      std::fprintf(stderr, "sitepower-drill: %s\n", e.status().message().c_str());
      return 2;
    }
    s.events.push_back(*e);
  }
  for (const auto& id : o.external_crews) {
    if (!s.FindCrew(id)) {
      std::fprintf(stderr, "sitepower-drill: --external-crew %s: no such crew in %s\n", id.c_str(),
                   o.scenario_path.c_str());
      return 2;
    }
  }
  std::stable_sort(s.events.begin(), s.events.end(),
                   [](const scenario::Event& a, const scenario::Event& b) { return a.at < b.at; });
  const int off = s.offset_min();
  std::optional<ReplayPlan> replay;
  std::string replay_damage;
  if (!o.replay_path.empty()) {
    auto plan = PrepareReplay(o, &s, &replay_damage);
    if (!plan.ok()) {
      std::fprintf(stderr, "sitepower-drill: %s\n", plan.status().message().c_str());
      return 2;
    }
    replay = std::move(*plan);
    PrintReplaySummary(*replay, o.replay_path, replay_damage, off);
  }

  std::string dir = o.work_dir;
  TempDirGuard temp_dir;  // declared before the daemon: removed after it stopped
  if (dir.empty()) {
    char tmpl[] = "/tmp/sitepower-drill-XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::fprintf(stderr, "sitepower-drill: cannot make a temp dir: %s\n", std::strerror(errno));
      return 1;
    }
    dir = temp_dir.dir = tmpl;
  } else {
    // A drill starts from nothing: an old store would bring back the last
    // drill's tasks and generators (and look like a restart).
    std::error_code ec;
    if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
      std::fprintf(stderr,
                   "drill: --keep-dir %s is not empty (it holds an earlier drill); "
                   "give a new or empty directory\n",
                   dir.c_str());
      return 2;
    }
    fs::create_directories(dir);
  }
  if (!o.record_path.empty()) {
    // A fresh recording: the daemon would continue an old one (after a
    // restart that is what it must do), mixing two drills in one file.
    fs::path p = fs::absolute(o.record_path);
    fs::create_directories(p.parent_path());
    fs::remove(p);
  }
  std::string daemon = o.daemon_path;
  if (daemon.empty())
    daemon = (fs::read_symlink("/proc/self/exe").parent_path() / "sitepowerd").string();

  // Plants: one simulated controller and battery per site; each controller
  // serves the register map the scenario names for it (the daemon polls it
  // through the same map).
  auto maps = modbus::MapRegistry::Load("");
  if (!maps.ok()) {
    std::fprintf(stderr, "sitepower-drill: %s\n", maps.status().ToString().c_str());
    return 1;
  }
  auto ydt_maps = ydt1363::YdtMapRegistry::Load("");
  if (!ydt_maps.ok()) {
    std::fprintf(stderr, "sitepower-drill: %s\n", ydt_maps.status().ToString().c_str());
    return 1;
  }
  for (const auto& site : s.sites)
    if (site.controller.protocol == "ydt1363" && !ydt_maps->Find(site.controller.map)) {
      std::fprintf(stderr,
                   "sitepower-drill: %s:%d: site %s: controller.map: unknown YD/T 1363 map '%s' "
                   "(built-in: %s)\n",
                   o.scenario_path.c_str(), site.line, site.id.c_str(), site.controller.map.c_str(),
                   JoinIds(ydt_maps->Names()).c_str());
      return 2;
    } else if (site.controller.protocol != "ydt1363" && !maps->Has(site.controller.map)) {
      std::fprintf(stderr,
                   "sitepower-drill: %s:%d: site %s: controller.map: unknown register map '%s' "
                   "(built-in: %s)\n",
                   o.scenario_path.c_str(), site.line, site.id.c_str(), site.controller.map.c_str(),
                   JoinIds(maps->Names()).c_str());
      return 2;
    }
  sim::Controllers farm;
  std::map<std::string, SimSite> sites;
  for (const auto& site : s.sites) {
    SimSite ss;
    ss.site = &site;
    std::string err;
    ss.farm_index = site.controller.protocol == "ydt1363"
                        ? farm.AddYdt(static_cast<uint8_t>(site.controller.unit),
                                      *ydt_maps->Find(site.controller.map), &err)
                        : farm.Add(*maps->Find(site.controller.map), &err);
    if (ss.farm_index < 0) {
      std::fprintf(stderr, "sitepower-drill: site %s: cannot start its simulated controller: %s\n",
                   site.id.c_str(), err.c_str());
      return 1;
    }
    if (replay && replay->tracks.count(site.id)) {
      const SiteTrack& track = replay->tracks.at(site.id);
      ss.true_runtime_min = RecordedRuntimeMin(track, site).value_or(0);
      ss.replay = std::make_unique<ReplayedSite>(track, site);
    } else if (site.battery) {
      ss.battery = std::make_unique<sim::BatterySim>(*site.battery, site.load_w);
      ss.true_runtime_min = sim::BatterySim::TrueRuntimeMin(*site.battery, site.load_w);
    } else {
      ss.true_runtime_min = site.runtime_min.value_or(0);
    }
    sites.emplace(site.id, std::move(ss));
  }
  farm.Start();

  // With --tls: a self-signed certificate for 127.0.0.1 (the openssl tool),
  // which the daemon serves and the crews trust, as a real region would with
  // its own CA.
  std::shared_ptr<grpc::ChannelCredentials> grpc_credentials = grpc::InsecureChannelCredentials();
  if (o.tls) {
    const std::string cmd =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1"
        " -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
        dir + "/tls-key.pem -out " + dir + "/tls-cert.pem 2>" + dir + "/openssl.log";
    std::ifstream cert;
    if (std::system(cmd.c_str()) != 0 || (cert.open(dir + "/tls-cert.pem"), !cert)) {
      std::fprintf(
          stderr,
          "sitepower-drill: --tls: openssl could not make a certificate; see %s/openssl.log\n",
          dir.c_str());
      return 1;
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs.assign(std::istreambuf_iterator<char>(cert), {});
    grpc_credentials = grpc::SslCredentials(ssl);
  }

  std::map<std::string, std::string> tokens;
  for (const auto& c : s.crews) tokens[c.id] = "drill-" + c.id + "-" + RandomHex(16);
  const std::string noc_token = "drill-noc-" + RandomHex(16);
  const int grpc_port = FreePort(), http_port = FreePort();
  // Scenario time starts shortly after the daemon has had time to come up.
  core::SystemClock wall;
  const core::TimePoint wall_start = wall.Now() + std::chrono::milliseconds(1500);
  // The drill's clock, shared with the daemon through a file in the work dir:
  // it stands still while the daemon plans (core/shared_clock.hpp).
  auto shared_clock = core::SharedClock::Create(dir + "/clock", s.start.at, wall_start, o.speed);
  if (!shared_clock.ok()) {
    std::fprintf(stderr, "sitepower-drill: %s\n", shared_clock.status().message().c_str());
    return 1;
  }
  const core::Clock& clock = **shared_clock;
  std::string config =
      DaemonConfig(s, o, dir, grpc_port, http_port, wall_start, sites, farm, tokens, noc_token);
  std::string state_file = dir + "/state.json";
  DaemonProcess proc(daemon, config, dir + "/sitepowerd.log");
  if (!proc.Start()) {
    std::fprintf(stderr, "sitepower-drill: cannot start %s\n", daemon.c_str());
    return 1;
  }
  auto wait_ready = [&state_file, &proc]() {
    for (int i = 0; i < 200; ++i) {
      if (ReadStateFile(state_file)) return true;
      if (!proc.Alive()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  if (!wait_ready()) {
    std::fprintf(stderr, "sitepower-drill: sitepowerd did not come up; see %s/sitepowerd.log\n",
                 dir.c_str());
    temp_dir.dir.clear();  // kept: the log says why
    return 1;
  }
  std::printf("dashboard: %s://127.0.0.1:%d/  (log in with the noc token)\n",
              o.tls ? "https" : "http", http_port);
  std::printf("noc token: %s   (work dir %s)\n", noc_token.c_str(), dir.c_str());
  std::printf("grpc: 127.0.0.1:%d%s\n", grpc_port,
              o.tls ? " (TLS: trust tls-cert.pem in the work dir)" : "");
  for (const auto& id : o.external_crews)
    std::printf("external crew %s: grpc 127.0.0.1:%d token %s\n", id.c_str(), grpc_port,
                tokens[id].c_str());
  std::fflush(stdout);
  signal(SIGINT, OnInterrupt);
  signal(SIGTERM, OnInterrupt);
  NocWatch noc_watch("127.0.0.1:" + std::to_string(grpc_port), grpc_credentials, noc_token);
  noc_watch.Start();

  std::mutex mu;  // guards `sites` generator fields written by crew threads
  std::map<std::string, std::unique_ptr<CrewSim>> crews;
  for (const auto& c : s.crews) {
    if (std::count(o.external_crews.begin(), o.external_crews.end(), c.id)) continue;
    CrewSimConfig cc;
    cc.id = c.id;
    cc.token = tokens[c.id];
    cc.server = "127.0.0.1:" + std::to_string(grpc_port);
    cc.credentials = grpc_credentials;
    cc.location = c.location;
    cc.generators = c.generators;
    cc.speed_kmh = c.speed_kmh.value_or(s.travel.speed_kmh);
    cc.travel = s.travel;
    cc.available_from = c.available_from;
    crews[c.id] = std::make_unique<CrewSim>(
        cc, clock,
        [&mu, &sites](const std::string& site, const std::string& crew, core::TimePoint at) {
          std::lock_guard<std::mutex> lock(mu);
          auto it = sites.find(site);
          if (it != sites.end() && !it->second.generator_at && !it->second.carried()) {
            it->second.generator_at = at;
            it->second.crew = crew;
          } else if (it != sites.end() && !it->second.generator_at && it->second.failed_at) {
            it->second.generator_at = at;  // mains back already; still record who came
            it->second.crew = crew;
          }
        });
  }
  for (auto& [id, c] : crews) c->Start();

  json injected = json::array();
  size_t next_event = 0;
  std::vector<std::pair<core::TimePoint, std::string>> fault_clears;
  // A replayed site's controller is also silent in the recording's holes:
  // the drill's loop shows the fault, not the event.
  auto set_fault = [&farm](SimSite& ss, sim::Fault f) {
    ss.fault = f;
    if (!ss.replay) farm.SetFault(ss.farm_index, f);
  };
  std::optional<std::chrono::steady_clock::time_point> restart_at;
  core::TimePoint last = clock.Now();
  auto last_progress = std::chrono::steady_clock::now();
  std::string end_reason = "scenario end";

  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (g_interrupted) {
      end_reason = "interrupted";
      break;
    }
    const core::TimePoint now = clock.Now();
    // Events due.
    while (next_event < s.events.size() && s.events[next_event].at <= now) {
      const scenario::Event& e = s.events[next_event++];
      std::lock_guard<std::mutex> lock(mu);
      std::visit(
          [&](const auto& b) {
            using T = std::decay_t<decltype(b)>;
            if constexpr (std::is_same_v<T, scenario::MainsFail>) {
              for (const auto& id : b.sites)
                if (!sites.at(id).failed_at) sites.at(id).failed_at = e.at;
            } else if constexpr (std::is_same_v<T, scenario::MainsRestore>) {
              for (const auto& id : b.sites)
                if (sites.at(id).failed_at && !sites.at(id).restored_at)
                  sites.at(id).restored_at = e.at;
            } else if constexpr (std::is_same_v<T, scenario::CrewUnavailable>) {
              if (crews.count(b.crew)) crews.at(b.crew)->SetUnavailable();
              injected.push_back(EventJson(e, s));
            } else if constexpr (std::is_same_v<T, scenario::ControllerFault>) {
              set_fault(sites.at(b.site), ToSimFault(b.kind));
              fault_clears.emplace_back(e.at + core::FromMinutes(b.for_min), b.site);
              injected.push_back(EventJson(e, s));
            } else if constexpr (std::is_same_v<T, scenario::DaemonKill>) {
              proc.Kill();
              std::remove(state_file.c_str());
              restart_at = std::chrono::steady_clock::now() +
                           std::chrono::milliseconds(static_cast<long>(b.restart_after_s * 1000));
              injected.push_back(EventJson(e, s));
              std::printf("[%s] daemon killed (SIGKILL); restart in %.0f s\n",
                          core::FormatHhMm(now, off).c_str(), b.restart_after_s);
            } else if constexpr (std::is_same_v<T, scenario::CrewLinkCut>) {
              if (crews.count(b.crew))
                crews.at(b.crew)->CutLink(e.at + core::FromMinutes(b.for_min));
              injected.push_back(EventJson(e, s));
            }
          },
          e.body);
    }
    for (auto it = fault_clears.begin(); it != fault_clears.end();) {
      if (it->first <= now) {
        set_fault(sites.at(it->second), sim::Fault::kNone);
        it = fault_clears.erase(it);
      } else {
        ++it;
      }
    }
    if (restart_at && std::chrono::steady_clock::now() >= *restart_at) {
      restart_at.reset();
      proc.Start();
      if (wait_ready())
        std::printf("[%s] daemon restarted: dashboard: %s://127.0.0.1:%d/\n",
                    core::FormatHhMm(clock.Now(), off).c_str(), o.tls ? "https" : "http",
                    http_port);
      else
        std::fprintf(stderr, "sitepower-drill: daemon did not come back; see %s/sitepowerd.log\n",
                     dir.c_str());
    }
    // Plants.
    double dt_s = std::chrono::duration<double>(now - last).count();
    last = now;
    int on_batt = 0, on_gen = 0, down = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& [id, ss] : sites) {
        if (now < s.start.at) break;
        const sim::ControllerState st =
            ss.replay ? StepReplayed(ss, now, dt_s, farm) : StepSimulated(ss, now, dt_s);
        farm.Set(ss.farm_index, st);
        if (st.lvd_open)
          ++down;
        else if (st.generator_running)
          ++on_gen;
        else if (!st.mains_ok)
          ++on_batt;
      }
    }
    if (!o.quiet && std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(2)) {
      last_progress = std::chrono::steady_clock::now();
      std::string crew_line;
      for (auto& [id, c] : crews) crew_line += "  " + c->Describe();
      std::printf("[%s] on battery %d, on generator %d, down %d |%s\n",
                  core::FormatHhMm(now, off).c_str(), on_batt, on_gen, down, crew_line.c_str());
      std::fflush(stdout);
    }
    // End: the horizon, or nothing can change any more.
    if (now >= s.end) break;
    bool pending_fail = false;
    for (size_t i = next_event; i < s.events.size(); ++i)
      pending_fail |= std::holds_alternative<scenario::MainsFail>(s.events[i].body);
    bool all_carried = true;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& [id, ss] : sites)
        if (ss.failed_at && !ss.carried()) all_carried = false;
    }
    if (!pending_fail && !restart_at && all_carried && next_event > 0) {
      end_reason = "every site that lost mains is carried";
      break;
    }
  }
  if (o.hold_s > 0) {
    std::printf("holding the daemon for %.0f s (dashboard stays up)\n", o.hold_s);
    std::fflush(stdout);
    const auto hold_end = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<long>(o.hold_s * 1000));
    while (!g_interrupted && std::chrono::steady_clock::now() < hold_end)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Every event a crew received is still in the daemon's history (after any
  // restart), unchanged.
  HistoryCheck history;
  for (auto& [id, c] : crews) {
    HistoryCheck h = c->VerifyHistory();
    history.checked += h.checked;
    history.missing += h.missing;
    history.changed += h.changed;
  }
  const std::map<std::string, core::TimePoint> confirmed = noc_watch.MainsFailConfirmed();
  const std::map<std::string, NocWatch::Band> predicted = noc_watch.PredictedAtConfirm();
  noc_watch.Stop();
  for (auto& [id, c] : crews) c->Stop();
  proc.Stop();
  farm.Stop();

  // Score what happened on the simulated batteries.
  std::map<std::string, scenario::Observed> observed;
  for (auto& [id, ss] : sites) {
    scenario::Observed ob;
    ob.generator_running_at = ss.generator_at;
    if (!ss.crew.empty()) ob.crew = ss.crew;
    if (ss.failed_at) {
      ob.runtime_min = ss.true_runtime_min;
      ob.battery_empty_at = ss.empty_at;
      // Ended early and never carried: its battery would empty on schedule.
      if (!ob.battery_empty_at && !ss.carried())
        ob.battery_empty_at = *ss.failed_at + core::FromMinutes(ss.true_runtime_min);
    }
    observed[id] = ob;
  }
  scenario::Score score = scenario::ScoreObserved(s, observed);
  StreamStats streams;
  PlanChurn churn_total;
  json churn = json::object();
  for (auto& [id, c] : crews) {
    auto st = c->stats();
    streams.events += st.events;
    streams.gaps += st.gaps;
    streams.duplicates += st.duplicates;
    const PlanChurn pc = c->churn();
    churn[id] = {{"tasks", pc.tasks},
                 {"updated", pc.updated},
                 {"reassigned", pc.reassigned},
                 {"eta_reversals", pc.eta_reversals}};
    churn_total.tasks += pc.tasks;
    churn_total.updated += pc.updated;
    churn_total.reassigned += pc.reassigned;
    churn_total.eta_reversals += pc.eta_reversals;
  }
  json jsites = json::object();
  for (const auto& site : s.sites) {
    const auto& o2 = score.sites.at(site.id);
    json j = {{"tier", core::TierName(site.tier)}, {"down_min", std::round(o2.down_min * 10) / 10}};
    if (o2.mains_fail_at) j["mains_fail_at"] = core::FormatIso8601(*o2.mains_fail_at, off);
    if (o2.generator_running_at)
      j["generator_running_at"] = core::FormatIso8601(*o2.generator_running_at, off);
    if (o2.crew) j["crew"] = *o2.crew;
    if (o2.runtime_min) j["runtime_min"] = std::round(*o2.runtime_min * 10) / 10;
    // sitepower's own additions: what the daemon confirmed, where the plant came from.
    if (auto it = confirmed.find(site.id); it != confirmed.end())
      j["daemon_mains_fail_at"] = core::FormatIso8601(it->second, off);
    if (auto it = predicted.find(site.id); it != predicted.end()) {
      auto r1 = [](double v) { return std::round(v * 10) / 10; };
      j["predicted_runtime_min"] = {
          {"p10", r1(it->second.p10)}, {"p50", r1(it->second.p50)}, {"p90", r1(it->second.p90)}};
    }
    if (replay) j["source"] = sites.at(site.id).replay ? "recording" : "scenario";
    jsites[site.id] = j;
  }
  json report = {
      {"scenario", s.name},
      {"speed", o.speed},
      {"policy", o.policy},
      {"sites", jsites},
      {"sites_down",
       {{"vip", score.vip_down}, {"key", score.key_down}, {"standard", score.standard_down}}},
      {"weighted_down_min", std::round(score.weighted_down_min * 10) / 10},
      {"last_generator_running_at",
       score.last_generator_running_at
           ? json(core::FormatIso8601(*score.last_generator_running_at, off))
           : json(nullptr)},
      {"injected", injected},
      {"crew_streams",
       {{"events", streams.events}, {"gaps", streams.gaps}, {"duplicates", streams.duplicates}}},
      // sitepower's own addition: received events checked against the history.
      {"crew_history",
       {{"checked", history.checked}, {"missing", history.missing}, {"changed", history.changed}}},
      // sitepower's own addition: how calm the plan looked from the crews' phones.
      {"plan_churn", churn},
      {"plan_churn_total",
       {{"tasks", churn_total.tasks},
        {"updated", churn_total.updated},
        {"reassigned", churn_total.reassigned},
        {"eta_reversals", churn_total.eta_reversals},
        {"updated_per_task", churn_total.tasks
                                 ? std::round(100.0 * churn_total.updated / churn_total.tasks) / 100
                                 : 0.0}}},
      {"ended", end_reason}};
  if (replay) {
    std::map<std::string, const ReplayedSite*> replayed;
    for (const auto& [id, ss] : sites)
      if (ss.replay) replayed[id] = ss.replay.get();
    report["replay"] = ReplayReportJson(*replay, replayed, o.replay_path, replay_damage, off);
  }
  if (!o.report_path.empty()) {
    fs::path p(o.report_path);
    if (p.has_parent_path()) fs::create_directories(p.parent_path());
    std::ofstream(o.report_path) << report.dump(2) << "\n";
  }
  std::printf("\n== drill report: %s at %gx (%s) ==\n", s.name.c_str(), o.speed,
              end_reason.c_str());
  std::printf("%-8s %-9s %-6s %-6s %-6s %-5s %s\n", "site", "tier", "fail", "gen", "empty", "crew",
              "down_min");
  for (const auto& site : s.sites) {
    const auto& so = score.sites.at(site.id);
    const auto& ss = sites.at(site.id);
    auto t = [off](const std::optional<core::TimePoint>& x) {
      return x ? core::FormatHhMm(*x, off) : std::string("-");
    };
    std::printf("%-8s %-9s %-6s %-6s %-6s %-5s %.1f\n", site.id.c_str(),
                std::string(core::TierName(site.tier)).c_str(), t(so.mains_fail_at).c_str(),
                t(so.generator_running_at).c_str(), t(ss.empty_at).c_str(),
                so.crew ? so.crew->c_str() : "-", so.down_min);
  }
  std::printf("sites down: vip %d, key %d, standard %d; weighted_down_min %.1f\n", score.vip_down,
              score.key_down, score.standard_down, score.weighted_down_min);
  std::printf("last generator running: %s\n",
              score.last_generator_running_at
                  ? core::FormatHhMm(*score.last_generator_running_at, off).c_str()
                  : "-");
  std::printf("plan churn: %llu tasks, %llu updated, %llu reassigned, %llu ETA reversals\n",
              static_cast<unsigned long long>(churn_total.tasks),
              static_cast<unsigned long long>(churn_total.updated),
              static_cast<unsigned long long>(churn_total.reassigned),
              static_cast<unsigned long long>(churn_total.eta_reversals));
  std::printf("crew streams: %llu events, %llu gaps, %llu duplicates\n",
              static_cast<unsigned long long>(streams.events),
              static_cast<unsigned long long>(streams.gaps),
              static_cast<unsigned long long>(streams.duplicates));
  std::printf(
      "crew history: %llu received events checked after the drill, %llu missing, %llu "
      "changed\n",
      static_cast<unsigned long long>(history.checked),
      static_cast<unsigned long long>(history.missing),
      static_cast<unsigned long long>(history.changed));
  if (replay) {
    std::printf("replayed from %s: %s; simulated from the scenario: %s\n", o.replay_path.c_str(),
                JoinIds(replay->replayed).c_str(), JoinIds(replay->simulated).c_str());
  }
  if (!o.record_path.empty()) std::printf("recording: %s\n", o.record_path.c_str());
  if (!o.report_path.empty()) std::printf("report: %s\n", o.report_path.c_str());
  return 0;
}

}  // namespace sitepower::drill
