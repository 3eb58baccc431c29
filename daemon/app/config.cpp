#include "app/config.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "core/yaml_reader.hpp"
#include "scenario/shared_yaml.hpp"

namespace sitepower::app {
namespace {

using core::YamlErrors;
using core::YamlMap;

bool IsSha256Hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c)) ||
        std::isupper(static_cast<unsigned char>(c)))
      return false;
  }
  return true;
}

// "host:port" with a port in 0..65535.
bool IsHostPort(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= s.size()) return false;
  int port = 0;
  for (size_t i = colon + 1; i < s.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    port = port * 10 + (s[i] - '0');
    if (port > 65535) return false;
  }
  return true;
}

void ReadListen(YamlMap& root, Config& c, YamlErrors& errors) {
  YAML::Node n = root.Child("listen");
  if (!n.IsDefined()) return;
  YamlMap m(n, "listen", errors);
  for (auto [key, field] : {std::pair{"grpc", &c.listen_grpc}, std::pair{"http", &c.listen_http}}) {
    if (auto v = m.String(key)) {
      if (IsHostPort(*v))
        *field = *v;
      else
        errors.Add(m.Child(key), m.PathOf(key), "expected host:port, got '" + *v + "'");
    }
  }
  m.CheckNoUnknownKeys();
}

void ReadTls(YamlMap& root, Config& c, YamlErrors& errors) {
  YAML::Node n = root.Child("tls");
  if (!n.IsDefined()) return;
  YamlMap m(n, "tls", errors);
  c.tls_cert = m.String("cert", true).value_or("");
  c.tls_key = m.String("key", true).value_or("");
  c.tls_client_ca = m.String("client_ca").value_or("");
  m.CheckNoUnknownKeys();
}

void ReadClock(YamlMap& root, Config& c, YamlErrors& errors) {
  YAML::Node n = root.Child("clock");
  if (!n.IsDefined()) return;
  YamlMap m(n, "clock", errors);
  auto start = m.String("scenario_start", true);
  auto wall = m.Integer("wall_start_unix_ms", true, 0);
  auto speed = m.Number("speed", false, 0.001, 100000);
  auto shared = m.String("shared_file");
  m.CheckNoUnknownKeys();
  if (!start || !wall) return;
  auto zt = core::ParseIso8601(*start);
  if (!zt.ok()) {
    errors.Add(m.Child("scenario_start"), "clock.scenario_start", zt.status().message());
    return;
  }
  c.clock = ClockConfig{*zt, core::TimePoint(core::Millis(*wall)), speed.value_or(1.0),
                        shared.value_or("")};
  c.utc_offset_min = zt->offset_min;
}

void ReadPoll(YamlMap& root, Config& c, YamlErrors& errors) {
  YAML::Node n = root.Child("poll");
  if (!n.IsDefined()) return;
  YamlMap m(n, "poll", errors);
  auto& p = c.poll;
  p.interval_ms = m.Integer("interval_ms", false, 10, 3600000).value_or(p.interval_ms);
  p.on_battery_interval_ms =
      m.Integer("on_battery_interval_ms", false, 10, 3600000).value_or(p.on_battery_interval_ms);
  p.timeout_ms = m.Integer("timeout_ms", false, 10, 600000).value_or(p.timeout_ms);
  p.stale_after_missed =
      m.Integer("stale_after_missed", false, 1, 1000).value_or(p.stale_after_missed);
  p.mains_fail_confirm =
      m.Integer("mains_fail_confirm", false, 1, 100).value_or(p.mains_fail_confirm);
  p.coalesce_ms = static_cast<int>(m.Integer("coalesce_ms", false, 0, 50).value_or(p.coalesce_ms));
  m.CheckNoUnknownKeys();
}

void ReadPlanner(YamlMap& root, Config& c, YamlErrors& errors) {
  YAML::Node n = root.Child("planner");
  if (!n.IsDefined()) return;
  YamlMap m(n, "planner", errors);
  auto& p = c.planner;
  if (auto policy = m.String("policy")) {
    if (*policy == "optimize" || *policy == "seed-rule")
      p.policy = *policy == "seed-rule" ? PlannerPolicy::kSeedRule : PlannerPolicy::kOptimize;
    else
      errors.Add(m.Child("policy"), m.PathOf("policy"),
                 "expected optimize|seed-rule, got '" + *policy + "'");
  }
  p.budget_ms = m.Integer("budget_ms", false, 1, 60000).value_or(p.budget_ms);
  p.keep_margin_min = m.Number("keep_margin_min", false, 0, 10000).value_or(p.keep_margin_min);
  p.change_margin_min =
      m.Number("change_margin_min", false, 0, 100000).value_or(p.change_margin_min);
  p.reserve = m.Bool("reserve").value_or(p.reserve);
  p.ack_timeout_min = m.Number("ack_timeout_min", false, 0.1, 10000).value_or(p.ack_timeout_min);
  p.contradiction_min =
      m.Number("contradiction_min", false, 0.01, 10000).value_or(p.contradiction_min);
  m.CheckNoUnknownKeys();
}

// The speeds termios (and so Asio's serial_port) can set.
constexpr int kBauds[] = {300,   600,   1200,   2400,   4800,   9600,  19200,
                          38400, 57600, 115200, 230400, 460800, 921600};

std::string LineKey(const SerialConfig& l) {
  return std::to_string(l.baud) + " " + std::to_string(l.data_bits) + l.parity +
         std::to_string(l.stop_bits);
}

void ReadSerial(YamlMap& sm, ControllerTransport transport, SerialConfig& l, YamlErrors& errors) {
  if (transport == ControllerTransport::kRtu)
    l.device = sm.String("device", true).value_or("");
  else if (sm.Has("device"))
    errors.Add(sm.Child("device"), sm.PathOf("device"),
               "not used with transport rtu_over_tcp (the gateway is host:port)");
  if (auto b = sm.Integer("baud")) {
    if (std::find(std::begin(kBauds), std::end(kBauds), *b) != std::end(kBauds)) {
      l.baud = static_cast<int>(*b);
    } else {
      std::string list;
      for (int v : kBauds) list += (list.empty() ? "" : ", ") + std::to_string(v);
      errors.Add(sm.Child("baud"), sm.PathOf("baud"),
                 "expected one of " + list + ", got " + std::to_string(*b));
    }
  }
  if (auto p = sm.String("parity")) {
    if (*p == "N" || *p == "E" || *p == "O")
      l.parity = (*p)[0];
    else
      errors.Add(sm.Child("parity"), sm.PathOf("parity"), "expected N|E|O, got '" + *p + "'");
  }
  if (auto d = sm.Integer("data_bits")) {
    if (*d == 8)
      l.data_bits = 8;
    else
      errors.Add(sm.Child("data_bits"), sm.PathOf("data_bits"),
                 "expected 8 (RTU frames carry 8-bit bytes; 7 is Modbus ASCII), got " +
                     std::to_string(*d));
  }
  l.stop_bits = static_cast<int>(sm.Integer("stop_bits", false, 1, 2).value_or(l.stop_bits));
  l.settle_ms = static_cast<int>(sm.Integer("settle_ms", false, 0, 10000).value_or(l.settle_ms));
  l.backoff_min_ms =
      static_cast<int>(sm.Integer("backoff_min_ms", false, 10, 600000).value_or(l.backoff_min_ms));
  l.backoff_max_ms =
      static_cast<int>(sm.Integer("backoff_max_ms", false, 10, 3600000).value_or(l.backoff_max_ms));
  if (l.backoff_max_ms < l.backoff_min_ms)
    errors.Add(sm.Child("backoff_max_ms"), sm.PathOf("backoff_max_ms"),
               "below backoff_min_ms (" + std::to_string(l.backoff_min_ms) + ")");
  sm.CheckNoUnknownKeys();
}

void ReadController(YamlMap& cm, ControllerConfig& ctl, YamlErrors& errors) {
  if (auto t = cm.String("transport")) {
    if (*t == "tcp")
      ctl.transport = ControllerTransport::kTcp;
    else if (*t == "rtu_over_tcp")
      ctl.transport = ControllerTransport::kRtuOverTcp;
    else if (*t == "rtu")
      ctl.transport = ControllerTransport::kRtu;
    else
      errors.Add(cm.Child("transport"), cm.PathOf("transport"),
                 "expected tcp|rtu_over_tcp|rtu, got '" + *t + "'");
  }
  const bool serial = ctl.transport == ControllerTransport::kRtu;
  const bool rtu = ctl.transport != ControllerTransport::kTcp;
  if (serial) {
    for (const char* key : {"host", "port"})
      if (cm.Has(key))
        errors.Add(cm.Child(key), cm.PathOf(key),
                   "not used with transport rtu (the line is serial.device)");
  } else {
    ctl.host = cm.String("host", true).value_or("");
    ctl.port = static_cast<int>(cm.Integer("port", false, 1, 65535).value_or(502));
  }
  ctl.protocol = cm.String("protocol").value_or("modbus");
  if (ctl.protocol != "modbus" && ctl.protocol != "ydt1363")
    errors.Add(cm.Child("protocol"), cm.PathOf("protocol"),
               "expected modbus|ydt1363, got '" + ctl.protocol + "'");
  if (ctl.protocol == "ydt1363") {  // devices are addressed by ADR, 0-255
    if (cm.Has("unit"))
      errors.Add(cm.Child("unit"), cm.PathOf("unit"), "protocol ydt1363 takes adr, not unit");
    ctl.unit = static_cast<int>(cm.Integer("adr", false, 0, 255).value_or(1));
  } else {
    if (cm.Has("adr"))
      errors.Add(cm.Child("adr"), cm.PathOf("adr"),
                 "adr goes with protocol ydt1363 (Modbus: unit)");
    if (rtu)  // 0 is broadcast (nobody answers a read), 248-255 are reserved
      ctl.unit = static_cast<int>(cm.Integer("unit", false, 1, 247).value_or(1));
    else
      ctl.unit = static_cast<int>(cm.Integer("unit", false, 0, 255).value_or(1));
  }
  ctl.map = cm.String("map").value_or(ctl.protocol == "ydt1363" ? "ydt-dc-power" : "sunspec-802");
  if (auto depth = cm.Integer("in_flight", false, 1, 255); depth && rtu)
    errors.Add(cm.Child("in_flight"), cm.PathOf("in_flight"),
               "only for transport tcp (an RTU bus carries one request at a time)");
  else if (depth)
    ctl.in_flight = static_cast<int>(*depth);
  YAML::Node sn = cm.Child("serial", serial);
  if (!sn.IsDefined()) return;
  if (!rtu) {
    errors.Add(sn, cm.PathOf("serial"), "only for transport rtu or rtu_over_tcp");
    return;
  }
  YamlMap sm(sn, cm.PathOf("serial"), errors);
  if (sm.valid()) ReadSerial(sm, ctl.transport, ctl.serial, errors);
}

void ReadSite(const YAML::Node& n, const std::string& path, Config& c, YamlErrors& errors) {
  YamlMap m(n, path, errors);
  if (!m.valid()) return;
  SiteConfig s;
  s.line = n.Mark().line + 1;
  s.id = m.String("id", true).value_or("");
  s.name = m.String("name").value_or("");
  s.grid = m.String("grid").value_or("");
  s.location = m.Location("location", true).value_or(core::LatLon{});
  if (auto t = m.String("tier")) {
    if (auto tier = core::ParseTier(*t))
      s.tier = *tier;
    else
      errors.Add(m.Child("tier"), m.PathOf("tier"), "expected vip|key|standard, got '" + *t + "'");
  }
  s.feeds = m.StringList("feeds").value_or(std::vector<std::string>{});
  s.load_w = m.Number("load_w", true, 0, 1e6).value_or(0);
  s.hookup_min = m.Number("hookup_min", false, 0, 600);
  s.battery = scenario::ReadBattery(m, "battery");
  if (auto g = m.String("generator")) {
    if (*g == "fixed")
      s.fixed_generator = true;
    else if (*g != "none")
      errors.Add(m.Child("generator"), m.PathOf("generator"), "expected none|fixed");
  }
  YAML::Node ctl = m.Child("controller", true);
  if (ctl.IsDefined()) {
    YamlMap cm(ctl, m.PathOf("controller"), errors);
    if (cm.valid()) ReadController(cm, s.controller, errors);
    cm.CheckNoUnknownKeys();
  }
  m.CheckNoUnknownKeys();
  c.sites.push_back(std::move(s));
}

void ReadCrew(const YAML::Node& n, const std::string& path, Config& c, YamlErrors& errors) {
  YamlMap m(n, path, errors);
  if (!m.valid()) return;
  CrewConfig cr;
  cr.line = n.Mark().line + 1;
  cr.id = m.String("id", true).value_or("");
  cr.name = m.String("name").value_or(cr.id);
  cr.grid = m.String("grid").value_or("");
  cr.location = m.Location("location", true).value_or(core::LatLon{});
  cr.generators = static_cast<int>(m.Integer("generators", true, 0, 1000).value_or(0));
  cr.speed_kmh = m.Number("speed_kmh", false, 1, 300).value_or(0);
  cr.token_sha256 = m.String("token_sha256", true).value_or("");
  if (!cr.token_sha256.empty() && !IsSha256Hex(cr.token_sha256)) {
    errors.Add(m.Child("token_sha256"), m.PathOf("token_sha256"),
               "expected 64 lower-case hex digits (printf %s TOKEN | sha256sum)");
  }
  m.CheckNoUnknownKeys();
  c.crews.push_back(std::move(cr));
}

template <typename Fn>
void ReadList(YamlMap& root, const std::string& key, YamlErrors& errors, Fn fn) {
  YAML::Node n = root.Child(key);
  if (!n.IsDefined() || n.IsNull()) return;
  if (!n.IsSequence()) {
    errors.Add(n, key, "expected a list");
    return;
  }
  for (size_t i = 0; i < n.size(); ++i) fn(n[i], key + "[" + std::to_string(i) + "]");
}

// Cross-checks that need the whole document: unique ids, known feeds, no
// feed cycles, unique tokens.
void Validate(Config& c, YamlErrors& errors) {
  std::map<std::string, const SiteConfig*> sites;
  for (const auto& s : c.sites) {
    if (s.id.empty()) continue;
    if (!sites.emplace(s.id, &s).second)
      errors.AddAtLine(s.line, "sites", "duplicate site id '" + s.id + "'");
  }
  for (const auto& s : c.sites) {
    for (const auto& f : s.feeds) {
      if (!sites.count(f))
        errors.AddAtLine(s.line, "sites." + s.id + ".feeds", "unknown site '" + f + "'");
      else if (f == s.id)
        errors.AddAtLine(s.line, "sites." + s.id + ".feeds", "a site cannot feed itself");
    }
  }
  // Cycle check by depth-first search over feeds.
  std::map<std::string, int> mark;  // 0 new, 1 on stack, 2 done
  std::function<bool(const std::string&)> cyclic = [&sites, &mark, &cyclic](const std::string& id) {
    if (mark[id] == 1) return true;
    if (mark[id] == 2) return false;
    mark[id] = 1;
    auto it = sites.find(id);
    if (it != sites.end()) {
      for (const auto& f : it->second->feeds)
        if (sites.count(f) && f != id && cyclic(f)) return true;
    }
    mark[id] = 2;
    return false;
  };
  for (const auto& s : c.sites) {
    if (!s.id.empty() && mark[s.id] == 0 && cyclic(s.id)) {
      errors.AddAtLine(s.line, "sites." + s.id + ".feeds", "feeds form a cycle");
      break;
    }
  }
  // One RTU bus (a serial device, a gateway's host:port) runs at one speed.
  std::map<std::string, const SiteConfig*> buses;
  for (const auto& s : c.sites) {
    const auto& ctl = s.controller;
    if (ctl.transport == ControllerTransport::kTcp) continue;
    const std::string bus = ctl.transport == ControllerTransport::kRtu
                                ? ctl.serial.device
                                : ctl.host + ":" + std::to_string(ctl.port);
    if (bus.empty() || bus == ":" + std::to_string(ctl.port)) continue;
    auto [it, fresh] = buses.emplace(bus, &s);
    const SerialConfig& first = it->second->controller.serial;
    if (!fresh && LineKey(first) != LineKey(ctl.serial))
      errors.AddAtLine(s.line, "sites." + s.id + ".controller.serial",
                       bus + " is polled at " + LineKey(first) + " by site " + it->second->id +
                           ", here at " + LineKey(ctl.serial));
  }
  std::set<std::string> crews;
  std::map<std::string, std::string> tokens;  // sha -> owner
  for (const auto& cr : c.crews) {
    if (!cr.id.empty() && !crews.insert(cr.id).second)
      errors.AddAtLine(cr.line, "crews", "duplicate crew id '" + cr.id + "'");
    if (!cr.token_sha256.empty() && !tokens.emplace(cr.token_sha256, "crew " + cr.id).second)
      errors.AddAtLine(cr.line, "crews." + cr.id + ".token_sha256",
                       "token already used by " + tokens[cr.token_sha256]);
  }
  std::set<std::string> operators;
  for (const auto& t : c.noc_tokens) {
    if (!t.sha256.empty() && !tokens.emplace(t.sha256, "noc " + t.name).second)
      errors.AddAtLine(0, "noc_tokens." + t.name, "token already used by " + tokens[t.sha256]);
    if (!t.name.empty() && !operators.insert(t.name).second)
      errors.AddAtLine(0, "noc_tokens." + t.name,
                       "operator name used twice: the audit log could not tell them apart");
  }
}

}  // namespace

const SiteConfig* Config::FindSite(const core::SiteId& id) const {
  for (const auto& s : sites)
    if (s.id == id) return &s;
  return nullptr;
}

const CrewConfig* Config::FindCrew(const core::CrewId& id) const {
  for (const auto& c : crews)
    if (c.id == id) return &c;
  return nullptr;
}

core::Result<Config> LoadConfigString(const std::string& yaml, const std::string& name) {
  auto doc = core::LoadYamlString(yaml, name);
  if (!doc.ok()) return doc.status();
  YamlErrors errors(name);
  YamlMap root(*doc, "", errors);
  if (!root.valid()) return errors.ToStatus();
  Config c;
  c.source = name;
  c.name = root.String("name").value_or(c.name);
  if (auto off = root.String("utc_offset")) {
    auto t = core::ParseIso8601("2000-01-01T00:00:00" + *off);
    if (t.ok())
      c.utc_offset_min = t->offset_min;
    else
      errors.Add(root.Child("utc_offset"), "utc_offset", "expected +HH:MM or Z");
  }
  ReadListen(root, c, errors);
  ReadTls(root, c, errors);
  c.store = root.String("store").value_or(c.store);
  c.state_file = root.String("state_file").value_or("");
  c.recording = root.String("recording").value_or("");
  ReadClock(root, c, errors);
  ReadPoll(root, c, errors);
  c.maps_dir = root.String("maps_dir").value_or("");
  scenario::ReadWeightsTravelHookup(root, c.weights, c.travel, c.hookup_min);
  ReadPlanner(root, c, errors);
  if (YAML::Node n = root.Child("metrics"); n.IsDefined()) {
    YamlMap m(n, "metrics", errors);
    if (auto access = m.String("access")) {
      if (*access == "loopback" || *access == "token" || *access == "open")
        c.metrics_access = *access;
      else
        errors.Add(m.Child("access"), m.PathOf("access"),
                   "expected loopback, token or open, got '" + *access + "'");
    }
    m.CheckNoUnknownKeys();
  }
  ReadList(root, "noc_tokens", errors, [&c, &errors](const YAML::Node& n, const std::string& path) {
    YamlMap m(n, path, errors);
    NocToken t{m.String("name", true).value_or(""), m.String("sha256", true).value_or("")};
    if (!t.sha256.empty() && !IsSha256Hex(t.sha256))
      errors.Add(m.Child("sha256"), m.PathOf("sha256"), "expected 64 lower-case hex digits");
    m.CheckNoUnknownKeys();
    c.noc_tokens.push_back(std::move(t));
  });
  ReadList(root, "sites", errors, [&c, &errors](const YAML::Node& n, const std::string& path) {
    ReadSite(n, path, c, errors);
  });
  ReadList(root, "crews", errors, [&c, &errors](const YAML::Node& n, const std::string& path) {
    ReadCrew(n, path, c, errors);
  });
  root.CheckNoUnknownKeys();
  Validate(c, errors);
  if (!errors.empty()) return errors.ToStatus();
  return c;
}

core::Result<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return core::Status::NotFound(path + ": cannot open config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return LoadConfigString(ss.str(), path);
}

}  // namespace sitepower::app
