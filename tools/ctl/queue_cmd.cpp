#include "ctl/queue_cmd.hpp"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/time.hpp"
#include "sitepower/v1/noc.grpc.pb.h"

namespace sitepower::ctl {
namespace {

namespace v1 = sitepower::v1;

struct Args {
  std::map<std::string, std::string> opts;
  std::vector<std::string> positional;
  bool has(const std::string& k) const { return opts.count(k) > 0; }
  std::string get(const std::string& k, const std::string& d = "") const {
    auto it = opts.find(k);
    return it == opts.end() ? d : it->second;
  }
};

Args Parse(int argc, char** argv, const std::vector<std::string>& flags) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      bool is_flag = false;
      for (const auto& f : flags) is_flag |= (s == f);
      if (is_flag || i + 1 >= argc)
        a.opts[s] = "1";
      else
        a.opts[s] = argv[++i];
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const char* StatusName(v1::TaskStatus s) {
  switch (s) {
    case v1::TASK_STATUS_ASSIGNED:
      return "assigned";
    case v1::TASK_STATUS_ACCEPTED:
      return "accepted";
    case v1::TASK_STATUS_EN_ROUTE:
      return "en route";
    case v1::TASK_STATUS_ON_SITE:
      return "on site";
    case v1::TASK_STATUS_GENERATOR_RUNNING:
      return "running";
    case v1::TASK_STATUS_RELEASED:
      return "released";
    case v1::TASK_STATUS_CANCELLED:
      return "cancelled";
    case v1::TASK_STATUS_DECLINED:
      return "declined";
    default:
      return "?";
  }
}

const char* TierName(v1::Tier t) {
  return t == v1::TIER_VIP ? "VIP" : t == v1::TIER_KEY ? "key" : "std";
}

std::string Hhmm(int64_t ms, int offset_min) {
  if (ms == 0) return "--:--";
  return core::FormatHhMm(core::TimePoint(core::Millis(ms)), offset_min);
}

void PrintTable(const v1::QueueSnapshot& q, int offset_min) {
  std::printf("queue v%llu at %s  (%d tasks)\n", static_cast<unsigned long long>(q.version()),
              Hhmm(q.at_unix_ms(), offset_min).c_str(), q.entries_size());
  std::printf("%-5s %-4s %-8s %-4s %-10s %-6s %-6s %7s  %s\n", "crew", "#", "site", "tier",
              "status", "eta", "dead", "margin", "reason");
  for (const auto& e : q.entries()) {
    const auto& t = e.task();
    std::printf("%-5s %-4d %-8s %-4s %-10s %-6s %-6s %6.0fm  %s\n", t.crew_id().c_str(), t.order(),
                t.site_id().c_str(), TierName(t.tier()), StatusName(t.status()),
                Hhmm(t.eta_unix_ms(), offset_min).c_str(),
                Hhmm(t.deadline_unix_ms(), offset_min).c_str(), e.margin_min(), t.reason().c_str());
  }
  int on_batt = 0, on_gen = 0, down = 0, stale = 0;
  for (const auto& s : q.sites()) {
    on_batt += s.state() == v1::POWER_STATE_ON_BATTERY;
    on_gen += s.state() == v1::POWER_STATE_ON_GENERATOR;
    down += s.state() == v1::POWER_STATE_DOWN;
    stale += s.state() == v1::POWER_STATE_STALE;
  }
  std::printf("sites: %d on battery, %d on generator, %d down, %d stale (of %d)\n", on_batt, on_gen,
              down, stale, q.sites_size());
  std::fflush(stdout);
}

nlohmann::json ToJson(const v1::QueueSnapshot& q) {
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& e : q.entries()) {
    const auto& t = e.task();
    entries.push_back({{"task_id", t.task_id()},
                       {"site", t.site_id()},
                       {"crew", t.crew_id()},
                       {"order", t.order()},
                       {"status", StatusName(t.status())},
                       {"eta_unix_ms", t.eta_unix_ms()},
                       {"deadline_unix_ms", t.deadline_unix_ms()},
                       {"margin_min", e.margin_min()},
                       {"reason", t.reason()}});
  }
  return {{"version", q.version()}, {"at_unix_ms", q.at_unix_ms()}, {"entries", entries}};
}

}  // namespace

int RunQueueCommand(int argc, char** argv) {
  Args a = Parse(argc, argv, {"--watch", "--json", "--help"});
  if (a.has("--help") || !a.has("--server") || !a.has("--token")) {
    std::fprintf(stderr,
                 "usage: sitepowerctl queue --server HOST:PORT --token T [--tls-ca FILE] [--watch] "
                 "[--json] [--utc-offset-min N]\n");
    return a.has("--help") ? 0 : 2;
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (a.has("--tls-ca")) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ReadFile(a.get("--tls-ca"));
    creds = grpc::SslCredentials(o);
  }
  auto stub = v1::NocService::NewStub(grpc::CreateChannel(a.get("--server"), creds));
  int offset = std::stoi(a.get("--utc-offset-min", "0"));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + a.get("--token"));
  if (!a.has("--watch"))
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto reader = stub->WatchQueue(&ctx, v1::WatchQueueRequest());
  v1::QueueSnapshot q;
  while (reader->Read(&q)) {
    if (a.has("--json"))
      std::printf("%s\n", ToJson(q).dump().c_str());
    else
      PrintTable(q, offset);
    std::fflush(stdout);
    if (!a.has("--watch")) {
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status st = reader->Finish();
  if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) {
    std::fprintf(stderr, "sitepowerctl queue: %s: %s\n", a.get("--server").c_str(),
                 st.error_message().c_str());
    return 1;
  }
  return 0;
}

namespace {

// Minimal HTTP/1.1 POST over a blocking socket (one request, Connection: close).
int HttpPost(const std::string& hostport, const std::string& path, const std::string& token,
             const std::string& body, std::string& response_body) {
  auto colon = hostport.rfind(':');
  if (colon == std::string::npos) return -1;
  std::string host = hostport.substr(0, colon), port = hostport.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return -1;
  int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    freeaddrinfo(res);
    if (fd >= 0) close(fd);
    return -1;
  }
  freeaddrinfo(res);
  std::string req = "POST " + path + " HTTP/1.1\r\nHost: " + hostport +
                    "\r\nContent-Type: application/json\r\nAuthorization: Bearer " + token +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n" + body;
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return -1;
  }
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  int code = -1;
  if (resp.size() > 12) code = std::atoi(resp.c_str() + 9);
  auto body_at = resp.find("\r\n\r\n");
  response_body = body_at == std::string::npos ? "" : resp.substr(body_at + 4);
  return code;
}

}  // namespace

int RunOverrideCommand(int argc, char** argv) {
  Args a = Parse(argc, argv, {"--help"});
  auto usage = []() {
    std::fprintf(stderr,
                 "usage: sitepowerctl override --http HOST:PORT --token T ACTION ... --why TEXT\n"
                 "  pin SITE CREW            this crew serves this site\n"
                 "  protect-vip SITE --until HH:MM|ISO   treat the site as VIP until then\n"
                 "  hold SITE | cancel SITE  do not dispatch to the site / cancel its task\n"
                 "  crew-unavailable CREW | crew-available CREW\n"
                 "  clear SITE               remove the site's overrides\n");
  };
  if (a.has("--help")) {
    usage();
    return 0;
  }
  if (!a.has("--http") || !a.has("--token") || a.positional.empty() || !a.has("--why")) {
    usage();
    return 2;
  }
  const std::string& action = a.positional[0];
  nlohmann::json body = {{"why", a.get("--why")}};
  auto need = [&a](size_t n) { return a.positional.size() >= n; };
  if (action == "pin" && need(3)) {
    body.update({{"action", "pin"}, {"site", a.positional[1]}, {"crew", a.positional[2]}});
  } else if (action == "protect-vip" && need(2) && a.has("--until")) {
    body.update(
        {{"action", "protect_vip"}, {"site", a.positional[1]}, {"until", a.get("--until")}});
  } else if ((action == "hold" || action == "cancel" || action == "clear") && need(2)) {
    body.update({{"action", action}, {"site", a.positional[1]}});
  } else if ((action == "crew-unavailable" || action == "crew-available") && need(2)) {
    body.update({{"action", action == "crew-unavailable" ? "crew_unavailable" : "crew_available"},
                 {"crew", a.positional[1]}});
  } else {
    usage();
    return 2;
  }
  std::string reply;
  int code = HttpPost(a.get("--http"), "/api/override", a.get("--token"), body.dump(), reply);
  if (code < 0) {
    std::fprintf(stderr, "sitepowerctl override: cannot reach %s\n", a.get("--http").c_str());
    return 1;
  }
  std::printf("%s\n", reply.c_str());
  return code == 200 ? 0 : 1;
}

}  // namespace sitepower::ctl
