#include "app/daemon.hpp"

#include <unistd.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <filesystem>
#include <fstream>
#include <memory>

#include "api/grpc_server.hpp"
#include "app/engine.hpp"
#include "app/log.hpp"
#include "app/recorder.hpp"
#include "core/shared_clock.hpp"
#include "modbus/poller.hpp"
#include "store/store.hpp"
#include "tasks/task_ledger.hpp"
#include "web/sd_notify.hpp"
#include "web/web_server.hpp"
#include "ydt1363/ydt_link.hpp"

namespace sitepower::app {
namespace {

std::unique_ptr<core::Clock> MakeClock(const Config& c) {
  if (c.clock && !c.clock->shared_file.empty()) {
    auto shared = core::SharedClock::Open(c.clock->shared_file);
    if (shared.ok()) return std::move(*shared);
    LogLine(LogLevel::kWarning, "clock",
            {{"error", shared.status().message()}, {"fallback", "warped clock from the config"}});
  }
  if (c.clock) {
    return std::make_unique<core::WarpedClock>(c.clock->scenario_start.at, c.clock->wall_start,
                                               c.clock->speed);
  }
  return std::make_unique<core::SystemClock>();
}

api::ServerOptions GrpcOptions(const Config& c, std::shared_ptr<api::Authenticator> auth) {
  api::ServerOptions o;
  o.listen = c.listen_grpc;
  o.tls_cert = c.tls_cert;
  o.tls_key = c.tls_key;
  o.tls_client_ca = c.tls_client_ca;
  o.authenticator = std::move(auth);
  return o;
}

// One authenticator for both ports: failed attempts count across them.
std::shared_ptr<api::Authenticator> MakeAuthenticator(const Config& c) {
  std::map<std::string, api::Principal> tokens;
  for (const auto& crew : c.crews)
    if (!crew.token_sha256.empty())
      tokens[crew.token_sha256] = {api::Principal::Role::kCrew, crew.id};
  for (const auto& t : c.noc_tokens) tokens[t.sha256] = {api::Principal::Role::kNoc, t.name};
  return std::make_shared<api::Authenticator>(std::move(tokens));
}

// The HTTP port accepts NOC operators only.
core::Result<std::string> HttpOperator(api::Authenticator& auth, std::string_view token,
                                       const std::string& peer) {
  auto who = auth.CheckToken(token, peer, "http");
  if (!who.ok()) return who.status();
  if (who->role != api::Principal::Role::kNoc)
    return core::Status::PermissionDenied("crew " + who->name +
                                          ": the dashboard and HTTP API need a NOC token");
  return who->name;
}

web::WebOptions WebOptionsOf(const Config& c, std::shared_ptr<api::Authenticator> auth,
                             const api::GrpcServer& grpc) {
  web::WebOptions o;
  o.listen = c.listen_http;
  o.tls_cert = c.tls_cert;
  o.tls_key = c.tls_key;
  o.authenticate = [auth](std::string_view token, const std::string& peer) {
    return HttpOperator(*auth, token, peer);
  };
  o.metrics_access = c.metrics_access == "open"    ? web::MetricsAccess::kOpen
                     : c.metrics_access == "token" ? web::MetricsAccess::kToken
                                                   : web::MetricsAccess::kLoopback;
  o.extra_metrics = [auth, &grpc]() { return grpc.MetricsText() + auth->MetricsText(); };
  return o;
}

modbus::PollerOptions PollOptions(const Config& c) {
  modbus::PollerOptions o;
  o.interval = core::Millis(c.poll.interval_ms);
  o.on_battery_interval = core::Millis(c.poll.on_battery_interval_ms);
  o.timeout = core::Millis(c.poll.timeout_ms);
  o.stale_after_missed = c.poll.stale_after_missed;
  o.mains_fail_confirm = c.poll.mains_fail_confirm;
  return o;
}

// Atomically writes {"grpc_port":..,"http_port":..,"pid":..} for tools.
void WriteStateFile(const std::string& path, int grpc_port, int http_port) {
  if (path.empty()) return;
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << "{\"grpc_port\":" << grpc_port << ",\"http_port\":" << http_port
        << ",\"pid\":" << getpid() << "}\n";
  }
  std::filesystem::rename(tmp, path);
}

modbus::DeviceSpec DeviceSpecOf(const SiteConfig& s) {
  const ControllerConfig& c = s.controller;
  modbus::DeviceSpec spec =
      modbus::DeviceSpec::Tcp(s.id, c.host, static_cast<uint16_t>(c.port), c.unit, c.map);
  switch (c.transport) {
    case ControllerTransport::kTcp:
      spec.transport = modbus::Transport::kTcp;
      break;
    case ControllerTransport::kRtuOverTcp:
      spec.transport = modbus::Transport::kRtuOverTcp;
      break;
    case ControllerTransport::kRtu:
      spec.transport = modbus::Transport::kRtuSerial;
      break;
  }
  spec.serial.device = c.serial.device;
  spec.serial.baud = c.serial.baud;
  spec.serial.parity = c.serial.parity;
  spec.serial.data_bits = c.serial.data_bits;
  spec.serial.stop_bits = c.serial.stop_bits;
  spec.protocol = c.protocol;
  spec.max_in_flight = c.in_flight;
  spec.rtu_settle = core::Millis(c.serial.settle_ms);
  spec.rtu_backoff_min = core::Millis(c.serial.backoff_min_ms);
  spec.rtu_backoff_max = core::Millis(c.serial.backoff_max_ms);
  return spec;
}

}  // namespace

core::Status CheckConfig(const Config& config) {
  auto maps = modbus::MapRegistry::Load(config.maps_dir);
  if (!maps.ok()) return maps.status().WithContext(config.source + ": maps_dir");
  auto ydt = ydt1363::YdtMapRegistry::Load("");
  if (!ydt.ok()) return ydt.status();
  std::string problems;
  for (const auto& s : config.sites) {
    if (s.controller.protocol == "ydt1363" && !ydt->Find(s.controller.map)) {
      problems += config.source + ":" + std::to_string(s.line) + ": sites." + s.id +
                  ".controller.map: unknown YD/T 1363 map '" + s.controller.map + "'\n";
    } else if (s.controller.protocol != "ydt1363" && !maps->Has(s.controller.map)) {
      problems += config.source + ":" + std::to_string(s.line) + ": sites." + s.id +
                  ".controller.map: unknown register map '" + s.controller.map + "'\n";
    }
  }
  for (const auto& f : {config.tls_cert, config.tls_key, config.tls_client_ca}) {
    if (!f.empty() && !std::ifstream(f))
      problems += config.source + ": tls: cannot read " + f + "\n";
  }
  if (!problems.empty()) {
    problems.pop_back();
    return core::Status::InvalidArgument(problems);
  }
  return core::Status::Ok();
}

int RunDaemon(const Config& config) {
  if (auto st = CheckConfig(config); !st.ok()) {
    LogLine(LogLevel::kError, "config", {{"error", st.message()}});
    return 2;
  }
  boost::asio::io_context io(1);  // one thread runs it (gRPC threads only post into it)
  std::unique_ptr<core::Clock> clock = MakeClock(config);
  auto maps = modbus::MapRegistry::Load(config.maps_dir);
  auto ydt_maps = ydt1363::YdtMapRegistry::Load("");  // checked by CheckConfig
  ydt_maps->ExportTo(&*maps);  // YD/T devices decode through their maps' registers
  auto store = store::OpenSqliteStore(config.store);
  if (!store.ok()) {
    LogLine(LogLevel::kError, "store",
            {{"path", config.store}, {"error", store.status().message()}});
    return 1;
  }
  tasks::TaskLedger ledger(**store, *clock);
  if (auto st = ledger.Recover(); !st.ok()) {
    LogLine(LogLevel::kError, "store", {{"path", config.store}, {"error", st.message()}});
    return 1;
  }
  Engine engine(io, config, *clock, ledger, **store);
  std::shared_ptr<api::Authenticator> auth = MakeAuthenticator(config);
  api::GrpcServer grpc(GrpcOptions(config, auth), ledger, engine, **store, *clock);
  if (auto st = grpc.Start(); !st.ok()) {
    LogLine(LogLevel::kError, "grpc", {{"listen", config.listen_grpc}, {"error", st.message()}});
    return 1;
  }
  grpc.SetLocationListener(
      [&engine](const core::CrewId& crew, core::LatLon where, core::TimePoint at) {
        engine.OnCrewLocation(crew, where, at);
      });
  web::WebServer web(io, WebOptionsOf(config, auth, grpc), engine);
  if (auto st = web.Start(); !st.ok()) {
    LogLine(LogLevel::kError, "http", {{"listen", config.listen_http}, {"error", st.message()}});
    grpc.Shutdown(std::chrono::milliseconds(500));
    return 1;
  }
  engine.SetPublishers([&grpc]() { grpc.PublishQueue(); },
                       [&web](std::string state) { web.Publish(std::move(state)); });

  Recorder recorder(config.recording);
  modbus::Poller poller(io, *clock, *maps, PollOptions(config),
                        [&engine, &recorder](const core::SiteId& site, const modbus::Reading& r) {
                          recorder.Add(site, r);
                          engine.OnReading(site, r);
                        });
  poller.AddProtocol(
      "ydt1363", ydt1363::LinkFactory(io.get_executor(), *ydt_maps, PollOptions(config).timeout));
  for (const auto& s : config.sites) {
    modbus::DeviceSpec spec = DeviceSpecOf(s);
    if (auto st = poller.AddDevice(spec); !st.ok()) {
      // One bad device must not take the region down: report it and go on.
      LogLine(LogLevel::kError, "device", {{"site", s.id}, {"error", st.message()}});
    }
  }
  engine.SetFastPollHook(
      [&poller](const core::SiteId& site, bool fast) { poller.SetFastPoll(site, fast); });
  engine.Start();
  poller.Start();
  WriteStateFile(config.state_file, grpc.port(), web.port());
  LogLine(LogLevel::kInfo, "ready",
          {{"grpc_port", std::to_string(grpc.port())},
           {"grpc_tls", config.tls_cert.empty()        ? "off"
                        : config.tls_client_ca.empty() ? "on"
                                                       : "on, client certificates required"},
           {"http_port", std::to_string(web.port())},
           {"sites", std::to_string(config.sites.size())},
           {"crews", std::to_string(config.crews.size())},
           {"speed", std::to_string(clock->Speed())}});
  web::NotifyReady();

  boost::asio::steady_timer watchdog(io);
  std::function<void()> feed = [&watchdog, &feed, &recorder]() {
    web::NotifyWatchdog();
    recorder.Flush();  // at most 5 s of telemetry in memory
    watchdog.expires_after(std::chrono::seconds(5));
    watchdog.async_wait([&feed](const boost::system::error_code& ec) {
      if (!ec) feed();
    });
  };
  feed();

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int sig) {
    LogLine(LogLevel::kInfo, "shutdown", {{"signal", std::to_string(sig)}});
    web::NotifyStopping();
    watchdog.cancel();
    poller.Stop();
    recorder.Flush();
    engine.Stop();
    web.Stop();
    grpc.Shutdown(std::chrono::seconds(2));
    io.stop();
  });
  // poll.coalesce_ms: one wake-up of the event loop for the replies of a
  // few ms (modbus::RunCoalesced); 0 is io.run().
  modbus::RunCoalesced(io, std::chrono::milliseconds(config.poll.coalesce_ms));
  return 0;
}

}  // namespace sitepower::app
