#include "ctl/queue_cmd.hpp"

#include <utility>  // Boost 1.74 needs it before Asio (BUILD-NOTES)

#include <grpcpp/grpcpp.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

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

// Machine output: the proto's field and enum names (TASK_STATUS_EN_ROUTE,
// TIER_VIP, POWER_STATE_ON_BATTERY), never the table's display words.
nlohmann::json ToJson(const v1::QueueSnapshot& q) {
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& e : q.entries()) {
    const auto& t = e.task();
    entries.push_back({{"task_id", t.task_id()},
                       {"site_id", t.site_id()},
                       {"site_name", t.site_name()},
                       {"tier", v1::Tier_Name(t.tier())},
                       {"crew_id", t.crew_id()},
                       {"order", t.order()},
                       {"status", v1::TaskStatus_Name(t.status())},
                       {"eta_unix_ms", t.eta_unix_ms()},
                       {"deadline_unix_ms", t.deadline_unix_ms()},
                       {"hookup_min", t.hookup_min()},
                       {"margin_min", e.margin_min()},
                       {"reason", t.reason()}});
  }
  nlohmann::json sites = nlohmann::json::array();
  for (const auto& s : q.sites()) {
    nlohmann::json site = {{"site_id", s.site_id()},
                           {"name", s.name()},
                           {"grid", s.grid()},
                           {"location", {{"lat", s.location().lat()}, {"lon", s.location().lon()}}},
                           {"tier", v1::Tier_Name(s.tier())},
                           {"state", v1::PowerState_Name(s.state())},
                           {"runtime", nullptr},
                           {"mains_fail_unix_ms", s.mains_fail_unix_ms()},
                           {"battery_v", s.battery_v()},
                           {"battery_a", s.battery_a()},
                           {"soc_pct", s.soc_pct()},
                           {"last_sample_unix_ms", s.last_sample_unix_ms()},
                           {"task_id", s.task_id()},
                           {"feeds", std::vector<std::string>(s.feeds().begin(), s.feeds().end())}};
    if (s.has_runtime())
      site["runtime"] = {{"p10_min", s.runtime().p10_min()},
                         {"p50_min", s.runtime().p50_min()},
                         {"p90_min", s.runtime().p90_min()},
                         {"at_unix_ms", s.runtime().at_unix_ms()}};
    sites.push_back(std::move(site));
  }
  nlohmann::json crews = nlohmann::json::array();
  for (const auto& c : q.crews())
    crews.push_back({{"crew_id", c.crew_id()},
                     {"location", {{"lat", c.location().lat()}, {"lon", c.location().lon()}}},
                     {"generators_left", c.generators_left()},
                     {"available", c.available()}});
  return {{"version", q.version()},
          {"at_unix_ms", q.at_unix_ms()},
          {"entries", entries},
          {"sites", sites},
          {"crews", crews}};
}

}  // namespace

std::string QueueJson(const v1::QueueSnapshot& q) {
  return ToJson(q).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

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
      std::printf("%s\n", QueueJson(q).c_str());
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
// POSTs over HTTP, or HTTPS verified against `tls_ca` when given. Returns the
// status code, or -1 with `response_body` saying why.
int HttpPost(const std::string& hostport, const std::string& path, const std::string& token,
             const std::string& body, std::string& response_body, const std::string& tls_ca) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace http = beast::http;
  auto colon = hostport.rfind(':');
  if (colon == std::string::npos) {
    response_body = "expected HOST:PORT";
    return -1;
  }
  const std::string host = hostport.substr(0, colon), port = hostport.substr(colon + 1);
  asio::io_context io;
  boost::system::error_code ec;
  auto endpoints = asio::ip::tcp::resolver(io).resolve(host, port, ec);
  if (ec) {
    response_body = ec.message();
    return -1;
  }
  http::request<http::string_body> req{http::verb::post, path, 11};
  req.set(http::field::host, hostport);
  req.set(http::field::content_type, "application/json");
  req.set(http::field::authorization, "Bearer " + token);
  req.body() = body;
  req.prepare_payload();
  http::response<http::string_body> res;
  beast::flat_buffer buffer;
  auto exchange = [&](auto& stream) {
    http::write(stream, req, ec);
    if (!ec) http::read(stream, buffer, res, ec);
  };
  if (tls_ca.empty()) {
    beast::tcp_stream stream(io);
    stream.connect(endpoints, ec);
    if (!ec) exchange(stream);
  } else {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.load_verify_file(tls_ca, ec);
    if (ec) {
      response_body = "--tls-ca " + tls_ca + ": " + ec.message();
      return -1;
    }
    ctx.set_verify_mode(asio::ssl::verify_peer);
    ctx.set_verify_callback(asio::ssl::host_name_verification(host));
    beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
    SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
    beast::get_lowest_layer(stream).connect(endpoints, ec);
    if (!ec) stream.handshake(asio::ssl::stream_base::client, ec);
    if (!ec) exchange(stream);
  }
  if (ec) {
    response_body = ec.message();
    return -1;
  }
  response_body = res.body();
  return static_cast<int>(res.result_int());
}

}  // namespace

int RunOverrideCommand(int argc, char** argv) {
  Args a = Parse(argc, argv, {"--help"});
  auto usage = []() {
    std::fprintf(
        stderr,
        "usage: sitepowerctl override --http HOST:PORT --token T [--tls-ca FILE] ACTION ... "
        "--why TEXT\n"
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
  int code = HttpPost(a.get("--http"), "/api/override", a.get("--token"), body.dump(), reply,
                      a.has("--tls-ca") ? a.get("--tls-ca") : "");
  if (code < 0) {
    std::fprintf(stderr, "sitepowerctl override: cannot reach %s: %s\n", a.get("--http").c_str(),
                 reply.c_str());
    return 1;
  }
  std::printf("%s\n", reply.c_str());
  return code == 200 ? 0 : 1;
}

}  // namespace sitepower::ctl
