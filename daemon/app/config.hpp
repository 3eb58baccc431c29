// The daemon's configuration: parse -> validate -> freeze. The loader reports
// every error with file:line and key path (not just the first); the result is
// an immutable Config passed by const&, never a global. Format and defaults:
// config/sitepowerd.example.yaml.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/geo.hpp"
#include "core/site.hpp"
#include "core/status.hpp"
#include "core/time.hpp"

namespace sitepower::app {

// How the controller is reached (modbus::Transport).
enum class ControllerTransport {
  kTcp,         // Modbus TCP at host:port
  kRtuOverTcp,  // RTU frames through a TCP gateway at host:port
  kRtu,         // RTU on the serial line serial.device
};

// A serial line: for rtu the line itself; for rtu_over_tcp the line behind
// the gateway (its speed sets the frame gap and wire times only).
struct SerialConfig {
  std::string device;  // rtu only: /dev/ttyUSB0, /dev/serial/by-id/...
  int baud = 9600;
  char parity = 'N';  // N, E or O
  int data_bits = 8;  // RTU frames are 8-bit
  int stop_bits = 1;
  // The bus's timing (the first site of a bus sets it): quiet time after a
  // timeout or garbage, and the reopen backoff (doubling, +-20 % jitter).
  int settle_ms = 50;
  int backoff_min_ms = 250;
  int backoff_max_ms = 30000;
};

struct ControllerConfig {
  ControllerTransport transport = ControllerTransport::kTcp;
  std::string host;  // tcp and rtu_over_tcp
  int port = 502;
  int unit = 1;  // 0-255 over tcp; 1-247 on an RTU line
  std::string map = "sunspec-802";
  int in_flight = 0;  // tcp: pipeline depth of the endpoint (0: the map's max_in_flight)
  SerialConfig serial;
  // modbus | ydt1363 (YD/T 1363.3: `adr` 0-255 in `unit`, a map from
  // config/ydt-maps, default ydt-dc-power; tcp = a serial-to-TCP converter).
  std::string protocol = "modbus";
};

struct SiteConfig {
  core::SiteId id;
  std::string name;
  std::string grid;
  core::LatLon location;
  core::Tier tier = core::Tier::kStandard;
  std::vector<core::SiteId> feeds;
  double load_w = 0;                 // nominal DC load until telemetry tells
  std::optional<double> hookup_min;  // default: Config::hookup_min
  std::optional<core::BatterySpec> battery;
  bool fixed_generator = false;
  ControllerConfig controller;
  int line = 0;
};

struct CrewConfig {
  core::CrewId id;
  std::string name;
  std::string grid;
  core::LatLon location;
  int generators = 0;
  double speed_kmh = 0;  // 0 = travel.speed_kmh
  std::string token_sha256;
  int line = 0;
};

struct NocToken {
  std::string name;
  std::string sha256;
};

struct ClockConfig {
  core::ZonedTime scenario_start;
  core::TimePoint wall_start;
  double speed = 1;
  // A drill's shared clock file (core/shared_clock.hpp): the daemon holds it
  // while it plans. Empty: a plain WarpedClock from the three values above.
  std::string shared_file;
};

struct PollConfig {
  int interval_ms = 10000;
  int on_battery_interval_ms = 5000;
  int timeout_ms = 1500;
  int stale_after_missed = 3;
  int mains_fail_confirm = 2;
  // The event loop handles what arrived within this many ms in one wake-up
  // (modbus::RunCoalesced): fewer system calls and context switches a read
  // at thousands of reads a second; replies and timers wait up to this.
  int coalesce_ms = 0;
};

// How the live loop plans: the optimizer, or the grid managers' rule applied
// at each event (VIP first, then key, then by predicted battery endurance;
// the crew that gets there first), the baseline every drill compares with.
enum class PlannerPolicy { kOptimize, kSeedRule };

struct PlannerConfig {
  PlannerPolicy policy = PlannerPolicy::kOptimize;
  int budget_ms = 200;
  double keep_margin_min = 10;
  // A re-plan replaces the crews' lists only when it saves at least this many
  // weighted down minutes, or has fewer VIP or key sites down (dispatch::
  // Options::change_margin_min); 0 = always take the newest plan.
  double change_margin_min = 30;
  // Hold generators for VIP and key sites still on mains when generators are
  // scarcer than the sites that will need them (dispatch/reserve.hpp).
  bool reserve = true;
  double ack_timeout_min = 10;
  // A crew's "generator running" that the controller contradicts (battery
  // still discharging) for this long is flagged to the NOC.
  double contradiction_min = 10;
};

struct Config {
  std::string source;              // file it came from
  std::string name = "sitepower";  // region or drill name, shown on the dashboard
  int utc_offset_min = 0;          // offset used to show times (a clock block overrides it)
  std::string listen_grpc = "127.0.0.1:50051";
  std::string listen_http = "127.0.0.1:8080";
  std::string tls_cert, tls_key, tls_client_ca;
  std::string store = "sitepower.db";
  std::string state_file;
  std::string recording;  // telemetry recording file (recording/recording.hpp); "" = off
  std::optional<ClockConfig> clock;
  PollConfig poll;
  std::string maps_dir;
  core::TierWeights weights;
  core::TravelModel travel;
  double hookup_min = 15;
  PlannerConfig planner;
  std::vector<NocToken> noc_tokens;  // one per operator; the name is what the audit log shows
  // Who may read /metrics: "loopback" (open to this machine, the NOC
  // credential from elsewhere), "token" (always the credential) or "open".
  std::string metrics_access = "loopback";
  std::vector<SiteConfig> sites;
  std::vector<CrewConfig> crews;

  const SiteConfig* FindSite(const core::SiteId& id) const;
  const CrewConfig* FindCrew(const core::CrewId& id) const;
  double HookupMin(const SiteConfig& s) const { return s.hookup_min.value_or(hookup_min); }
};

core::Result<Config> LoadConfigFile(const std::string& path);
core::Result<Config> LoadConfigString(const std::string& yaml, const std::string& name);

}  // namespace sitepower::app
