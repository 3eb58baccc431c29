// Strict loader for FORMAT.md scenarios.
#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "core/yaml_reader.hpp"
#include "scenario/scenario.hpp"
#include "scenario/shared_yaml.hpp"

namespace sitepower::scenario {
namespace {

using core::YamlErrors;
using core::YamlMap;

// "HH:MM" on the scenario date, or a full ISO 8601 time.
std::optional<TimePoint> ReadWhen(YamlMap& m, const std::string& key, bool required,
                                  const core::ZonedTime& start, YamlErrors& errors) {
  auto s = m.String(key, required);
  if (!s) return std::nullopt;
  if (s->find('T') != std::string::npos) {
    auto t = core::ParseIso8601(*s);
    if (t.ok()) return t->at;
    errors.Add(m.Child(key), m.PathOf(key), t.status().message());
    return std::nullopt;
  }
  auto t = core::ParseHhMmOn(*s, start);
  if (t.ok()) return *t;
  errors.Add(m.Child(key), m.PathOf(key), t.status().message() + " (quote it: \"14:00\")");
  return std::nullopt;
}

void ReadSites(YamlMap& root, Scenario& sc, YamlErrors& errors) {
  YAML::Node list = root.Child("sites", true);
  if (!list.IsDefined()) return;
  if (!list.IsSequence()) {
    errors.Add(list, "sites", "expected a list");
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    YamlMap m(list[i], "sites[" + std::to_string(i) + "]", errors);
    if (!m.valid()) continue;
    Site s;
    s.line = list[i].Mark().line + 1;
    s.id = m.String("id", true).value_or("");
    s.name = m.String("name").value_or("");
    s.grid = m.String("grid").value_or("");
    s.location = m.Location("location", true).value_or(core::LatLon{});
    if (auto t = m.String("tier")) {
      if (auto tier = core::ParseTier(*t))
        s.tier = *tier;
      else
        errors.Add(m.Child("tier"), m.PathOf("tier"),
                   "expected vip|key|standard, got '" + *t + "'");
    }
    s.feeds = m.StringList("feeds").value_or(std::vector<std::string>{});
    s.load_w = m.Number("load_w", true, 0, 1e6).value_or(0);
    s.hookup_min = m.Number("hookup_min", false, 0, 600);
    s.battery = ReadBattery(m, "battery");
    s.runtime_min = m.Number("runtime_min", false, 0, 1e6);
    if (m.Has("battery") == m.Has("runtime_min"))
      errors.Add(list[i], m.path(), "give exactly one of battery or runtime_min");
    if (auto g = m.String("generator")) {
      if (*g == "fixed")
        s.fixed_generator = true;
      else if (*g != "none")
        errors.Add(m.Child("generator"), m.PathOf("generator"), "expected none|fixed");
    }
    if (YAML::Node c = m.Child("controller"); c.IsDefined()) {
      YamlMap cm(c, m.PathOf("controller"), errors);
      s.controller.protocol = cm.String("protocol").value_or("modbus");
      const bool ydt = s.controller.protocol == "ydt1363";
      if (!ydt && s.controller.protocol != "modbus")
        errors.Add(cm.Child("protocol"), cm.PathOf("protocol"), "expected modbus|ydt1363");
      s.controller.map = cm.String("map").value_or(ydt ? "ydt-dc-power" : s.controller.map);
      // YD/T 1363 addresses devices by ADR, Modbus by unit id.
      const char* id_key = ydt ? "adr" : "unit";
      if (cm.Has(ydt ? "unit" : "adr"))
        errors.Add(cm.Child(ydt ? "unit" : "adr"), cm.PathOf(ydt ? "unit" : "adr"),
                   std::string("protocol ") + s.controller.protocol + " takes " + id_key);
      s.controller.unit = static_cast<int>(cm.Integer(id_key, false, 0, 255).value_or(1));
      cm.CheckNoUnknownKeys();
    }
    m.CheckNoUnknownKeys();
    sc.sites.push_back(std::move(s));
  }
}

void ReadCrews(YamlMap& root, Scenario& sc, YamlErrors& errors) {
  YAML::Node list = root.Child("crews", true);
  if (!list.IsDefined()) return;
  if (!list.IsSequence()) {
    errors.Add(list, "crews", "expected a list");
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    YamlMap m(list[i], "crews[" + std::to_string(i) + "]", errors);
    if (!m.valid()) continue;
    Crew c;
    c.line = list[i].Mark().line + 1;
    c.id = m.String("id", true).value_or("");
    c.grid = m.String("grid").value_or("");
    c.location = m.Location("location", true).value_or(core::LatLon{});
    c.generators = static_cast<int>(m.Integer("generators", true, 0, 1000).value_or(0));
    c.speed_kmh = m.Number("speed_kmh", false, 1, 300);
    c.available_from = ReadWhen(m, "available_from", false, sc.start, errors);
    m.CheckNoUnknownKeys();
    sc.crews.push_back(std::move(c));
  }
}

std::vector<SiteId> ReadSiteList(YamlMap& m, const std::string& key, const Scenario& sc) {
  YAML::Node n = m.Child(key);
  if (n.IsScalar() && n.Scalar() == "all") {
    std::vector<SiteId> all;
    for (const auto& s : sc.sites) all.push_back(s.id);
    return all;
  }
  auto list = m.StringList(key);
  return list.value_or(std::vector<SiteId>{});
}

std::optional<FaultKind> ParseFault(const std::string& s) {
  if (s == "timeout") return FaultKind::kTimeout;
  if (s == "exception") return FaultKind::kException;
  if (s == "garbage") return FaultKind::kGarbage;
  if (s == "half_open") return FaultKind::kHalfOpen;
  return std::nullopt;
}

void ReadEvents(YamlMap& root, Scenario& sc, YamlErrors& errors) {
  YAML::Node list = root.Child("events");
  if (!list.IsDefined() || list.IsNull()) return;
  if (!list.IsSequence()) {
    errors.Add(list, "events", "expected a list");
    return;
  }
  static const std::vector<std::string> kKinds = {"mains_fail",       "mains_restore",
                                                  "crew_unavailable", "controller_fault",
                                                  "daemon_kill",      "crew_link_cut"};
  for (size_t i = 0; i < list.size(); ++i) {
    std::string path = "events[" + std::to_string(i) + "]";
    YamlMap m(list[i], path, errors);
    if (!m.valid()) continue;
    Event e;
    e.line = list[i].Mark().line + 1;
    auto at = ReadWhen(m, "at", true, sc.start, errors);
    std::vector<std::string> present;
    for (const auto& k : kKinds)
      if (m.Has(k)) present.push_back(k);
    if (present.size() != 1) {
      errors.Add(list[i], path,
                 "expected exactly one of mains_fail, mains_restore, crew_unavailable, "
                 "controller_fault, daemon_kill, crew_link_cut");
      m.CheckNoUnknownKeys();
      continue;
    }
    const std::string& kind = present[0];
    bool ok = true;
    if (kind == "mains_fail") {
      e.body = MainsFail{ReadSiteList(m, kind, sc)};
    } else if (kind == "mains_restore") {
      e.body = MainsRestore{ReadSiteList(m, kind, sc)};
    } else if (kind == "crew_unavailable") {
      e.body = CrewUnavailable{m.String(kind, true).value_or("")};
    } else if (kind == "controller_fault") {
      YamlMap f(m.Child(kind), m.PathOf(kind), errors);
      ControllerFault cf;
      cf.site = f.String("site", true).value_or("");
      auto k = f.String("kind", true);
      auto parsed = k ? ParseFault(*k) : std::nullopt;
      if (k && !parsed) {
        errors.Add(f.Child("kind"), f.PathOf("kind"),
                   "expected timeout|exception|garbage|half_open");
        ok = false;
      }
      cf.kind = parsed.value_or(FaultKind::kTimeout);
      cf.for_min = f.Number("for_min", true, 0, 1e6).value_or(0);
      f.CheckNoUnknownKeys();
      e.body = cf;
    } else if (kind == "daemon_kill") {
      YamlMap f(m.Child(kind), m.PathOf(kind), errors);
      e.body = DaemonKill{f.Number("restart_after_s", false, 0, 86400).value_or(0)};
      f.CheckNoUnknownKeys();
    } else {
      YamlMap f(m.Child(kind), m.PathOf(kind), errors);
      e.body = CrewLinkCut{f.String("crew", true).value_or(""),
                           f.Number("for_min", true, 0, 1e6).value_or(0)};
      f.CheckNoUnknownKeys();
    }
    m.CheckNoUnknownKeys();
    if (at && ok) {
      e.at = *at;
      sc.events.push_back(std::move(e));
    }
  }
}

// Whole-document checks: unique ids, references, feed cycles, event order.
void CrossCheck(Scenario& sc, YamlErrors& errors) {
  std::map<SiteId, const Site*> sites;
  for (const auto& s : sc.sites)
    if (!s.id.empty() && !sites.emplace(s.id, &s).second)
      errors.AddAtLine(s.line, "sites", "duplicate site id '" + s.id + "'");
  std::set<CrewId> crews;
  for (const auto& c : sc.crews)
    if (!c.id.empty() && !crews.insert(c.id).second)
      errors.AddAtLine(c.line, "crews", "duplicate crew id '" + c.id + "'");
  for (const auto& s : sc.sites)
    for (const auto& f : s.feeds)
      if (!sites.count(f) || f == s.id)
        errors.AddAtLine(s.line, "sites." + s.id + ".feeds",
                         f == s.id ? "a site cannot feed itself" : "unknown site '" + f + "'");
  std::map<SiteId, int> mark;
  std::function<bool(const SiteId&)> cyclic = [&sites, &mark, &cyclic](const SiteId& id) {
    if (mark[id] == 1) return true;
    if (mark[id] == 2) return false;
    mark[id] = 1;
    for (const auto& f : sites.at(id)->feeds)
      if (sites.count(f) && f != id && cyclic(f)) return true;
    mark[id] = 2;
    return false;
  };
  for (const auto& [id, s] : sites)
    if (mark[id] == 0 && cyclic(id)) {
      errors.AddAtLine(s->line, "sites." + id + ".feeds", "feeds form a cycle");
      break;
    }
  TimePoint prev = sc.start.at - std::chrono::hours(24 * 365);
  for (const auto& e : sc.events) {
    if (e.at < prev) errors.AddAtLine(e.line, "events", "events must be in time order");
    prev = e.at;
    auto check_site = [&](const SiteId& id) {
      if (!sites.count(id)) errors.AddAtLine(e.line, "events", "unknown site '" + id + "'");
    };
    auto check_crew = [&](const CrewId& id) {
      if (!crews.count(id)) errors.AddAtLine(e.line, "events", "unknown crew '" + id + "'");
    };
    std::visit(
        [&](const auto& b) {
          using T = std::decay_t<decltype(b)>;
          if constexpr (std::is_same_v<T, MainsFail> || std::is_same_v<T, MainsRestore>) {
            for (const auto& id : b.sites) check_site(id);
          } else if constexpr (std::is_same_v<T, CrewUnavailable> ||
                               std::is_same_v<T, CrewLinkCut>) {
            check_crew(b.crew);
          } else if constexpr (std::is_same_v<T, ControllerFault>) {
            check_site(b.site);
          }
        },
        e.body);
  }
}

}  // namespace

core::Result<Scenario> LoadScenarioString(const std::string& yaml, const std::string& name) {
  auto doc = core::LoadYamlString(yaml, name);
  if (!doc.ok()) return doc.status();
  YamlErrors errors(name);
  YamlMap root(*doc, "", errors);
  if (!root.valid()) return errors.ToStatus();
  Scenario sc;
  sc.name = root.String("name", true).value_or("");
  if (!sc.name.empty() && !std::regex_match(sc.name, std::regex("[a-z0-9-]+")))
    errors.Add(root.Child("name"), "name", "expected [a-z0-9-]+");
  sc.description = root.String("description").value_or("");
  if (auto s = root.String("start", true)) {
    auto t = core::ParseIso8601(*s);
    if (t.ok())
      sc.start = *t;
    else
      errors.Add(root.Child("start"), "start", t.status().message());
  }
  if (!errors.empty()) return errors.ToStatus();  // every later time needs start
  sc.end =
      ReadWhen(root, "end", false, sc.start, errors).value_or(sc.start.at + std::chrono::hours(24));
  ReadWeightsTravelHookup(root, sc.weights, sc.travel, sc.hookup_min);
  ReadSites(root, sc, errors);
  ReadCrews(root, sc, errors);
  ReadEvents(root, sc, errors);
  root.CheckNoUnknownKeys();
  CrossCheck(sc, errors);
  if (!errors.empty()) return errors.ToStatus();
  return sc;
}

core::Result<Scenario> LoadScenarioFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return core::Status::NotFound(path + ": cannot open scenario file");
  std::stringstream ss;
  ss << in.rdbuf();
  return LoadScenarioString(ss.str(), path);
}

}  // namespace sitepower::scenario
