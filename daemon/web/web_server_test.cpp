// The web server over real HTTP on loopback with a fake backend.
#include "web/web_server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include <future>
#include <set>
#include <thread>

namespace sitepower::web {
namespace {

class FakeBackend : public WebBackend {
 public:
  std::string StateJson() override { return "{\"version\":1}"; }
  std::string MetricsText() override { return "# TYPE x counter\nx 1\n"; }
  bool Ready() override { return true; }
  core::Result<std::string> Override(const std::string& who, const std::string& body) override {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object() && j.contains("site"))  // echoes the site, whatever bytes it holds
      return core::Status::NotFound("site: unknown site '" + j["site"].get<std::string>() + "'");
    return nlohmann::json{{"ok", true}, {"by", who}}.dump();
  }
};

// Sends raw HTTP and returns everything until `until` appears or the server closes.
std::string Http(uint16_t port, const std::string& req, const std::string& until = "") {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "";
  if (write(fd, req.data(), req.size()) < 0) return "";
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((until.empty() || out.find(until) == std::string::npos) &&
         (n = read(fd, buf, sizeof buf)) > 0)
    out.append(buf, n);
  close(fd);
  return out;
}

int StatusOf(const std::string& response) {
  return response.size() > 12 ? std::atoi(response.c_str() + 9) : 0;
}
std::string BodyOf(const std::string& response) {
  auto at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}
std::string HeaderOf(const std::string& response, const std::string& name) {
  auto at = response.find("\r\n" + name + ": ");
  if (at == std::string::npos) return "";
  at += name.size() + 4;
  return response.substr(at, response.find("\r\n", at) - at);
}

class WebTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(MetricsAccess::kToken); }
  void StartServer(MetricsAccess metrics, size_t max_event_clients = 64) {
    WebOptions o;
    o.authenticate = [](std::string_view token, const std::string&) -> core::Result<std::string> {
      if (token == "noc-tok") return std::string("alice");
      if (token == "crew-tok") return core::Status::PermissionDenied("crew A1: needs a NOC token");
      if (token == "slow") return core::Status::ResourceExhausted("too many; retry in 7 s");
      return core::Status::Unauthenticated("unknown token");
    };
    o.metrics_access = metrics;
    o.max_event_clients = max_event_clients;
    o.extra_metrics = []() { return std::string("extra 2\n"); };
    server_ = std::make_unique<WebServer>(io_, o, backend_);
    ASSERT_TRUE(server_->Start().ok());
    thread_ = std::thread([this]() { io_.run(); });
  }
  void StopServer() {
    std::promise<void> stopped;  // Stop() runs before the loop ends, on this server
    boost::asio::post(io_, [this, &stopped]() {
      server_->Stop();
      stopped.set_value();
    });
    stopped.get_future().wait();
    io_.stop();
    thread_.join();
    io_.restart();
  }
  void TearDown() override { StopServer(); }

  // A request to `method path` with extra header lines, the connection closed after it.
  std::string Call(const std::string& method, const std::string& path,
                   const std::string& headers = "", const std::string& body = "",
                   const std::string& until = "") {
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers;
    if (method != "POST") return Http(server_->port(), req + "Connection: close\r\n\r\n", until);
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    return Http(server_->port(), req + "Connection: close\r\n\r\n" + body, until);
  }
  std::string Login(const std::string& token) {
    std::string body = "token=" + token;
    return Http(server_->port(),
                "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                "application/x-www-form-urlencoded\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  }

  boost::asio::io_context io_;
  FakeBackend backend_;
  std::unique_ptr<WebServer> server_;
  std::thread thread_;
};

// Every route of the server's own table: a route that is open must be one of
// the few meant to be; every other one refuses no credential, a wrong token
// and a crew token, and lets a NOC operator through. A new endpoint is tested
// here without editing this test, and one added without auth fails it.
TEST_F(WebTest, EveryEndpointRefusesMissingWrongAndCrewCredentials) {
  const std::set<std::string> kMayBeOpen = {"/",           "/index.html", "/app.js", "/style.css",
                                            "/login.html", "/healthz",    "/readyz", "/login"};
  const auto routes = WebServer::Routes();
  ASSERT_GE(routes.size(), 12u);
  int protected_routes = 0;
  for (const auto& r : routes) {
    SCOPED_TRACE(r.method + " " + r.path);
    if (r.access == "open") {
      EXPECT_TRUE(kMayBeOpen.count(r.path)) << "an open endpoint that is not meant to be";
      continue;
    }
    ++protected_routes;
    const std::string until = r.path == "/events" ? "\r\n\r\n" : "";
    struct Case {
      std::string header;
      int status;
    };
    for (const Case& c : {Case{"", 401}, Case{"Authorization: Bearer wrong\r\n", 401},
                          Case{"Authorization: Basic bm9jLXRvaw==\r\n", 401},
                          Case{"Cookie: sp_session=forged\r\n", 401},
                          Case{"Authorization: Bearer crew-tok\r\n", 403},
                          Case{"Authorization: Bearer slow\r\n", 429}}) {
      auto res = Call(r.method, r.path, c.header, "{}", until);
      EXPECT_EQ(StatusOf(res), c.status) << c.header << res;
      auto body = nlohmann::json::parse(BodyOf(res), nullptr, false);
      ASSERT_TRUE(body.is_object() && body["error"].is_string()) << res;
      EXPECT_EQ(body["error"].get<std::string>().rfind(r.method + " " + r.path + ": ", 0), 0u)
          << "the error names the endpoint: " << body["error"];
      if (c.status == 401) {
        EXPECT_EQ(HeaderOf(res, "WWW-Authenticate"), "Bearer realm=\"sitepower\"");
      }
      if (c.status == 429) {
        EXPECT_EQ(HeaderOf(res, "Retry-After"), "7");
      }
    }
    // No token in URLs: a query string is not a credential.
    EXPECT_EQ(StatusOf(Call(r.method, r.path + "?token=noc-tok", "", "{}", until)), 401);
    auto ok = Call(r.method, r.path, "Authorization: Bearer noc-tok\r\n", "{}", until);
    EXPECT_TRUE(StatusOf(ok) == 200 || StatusOf(ok) == 303) << ok;
  }
  EXPECT_GE(protected_routes, 6);
}

TEST_F(WebTest, OpenEndpointsNeedNoCredential) {
  for (const char* path :
       {"/", "/index.html", "/app.js", "/style.css", "/login.html", "/healthz", "/readyz"})
    EXPECT_EQ(StatusOf(Call("GET", path)), 200) << path;
  EXPECT_NE(Call("GET", "/").find("sitepower NOC"), std::string::npos);
  EXPECT_NE(Call("GET", "/app.js").find("EventSource"), std::string::npos);
  EXPECT_EQ(StatusOf(Call("GET", "/nope")), 404);
  EXPECT_EQ(StatusOf(Call("DELETE", "/")), 405);
}

TEST_F(WebTest, LoginFormSetsAStrictHttpOnlySessionCookie) {
  auto failed = Login("guess");
  EXPECT_EQ(StatusOf(failed), 401);
  EXPECT_NE(failed.find("id=\"login-error\">unknown token<"), std::string::npos) << failed;
  EXPECT_EQ(HeaderOf(failed, "Set-Cookie"), "");
  EXPECT_EQ(StatusOf(Login("crew-tok")), 403);

  auto ok = Login("noc-tok");
  ASSERT_EQ(StatusOf(ok), 303) << ok;
  EXPECT_EQ(HeaderOf(ok, "Location"), "/");
  std::string cookie = HeaderOf(ok, "Set-Cookie");
  EXPECT_NE(cookie.find("; HttpOnly"), std::string::npos) << cookie;
  EXPECT_NE(cookie.find("; SameSite=Strict"), std::string::npos) << cookie;
  EXPECT_NE(cookie.find("; Path=/"), std::string::npos) << cookie;
  ASSERT_EQ(cookie.rfind("sp_session=", 0), 0u);
  const std::string session = cookie.substr(0, cookie.find(';'));
  ASSERT_GT(session.size(), 40u);

  const std::string with = "Cookie: theme=dark; " + session + "\r\n";
  EXPECT_EQ(BodyOf(Call("GET", "/api/state", with)), "{\"version\":1}");
  EXPECT_EQ(BodyOf(Call("GET", "/api/session", with)), "{\"operator\":\"alice\"}");
  EXPECT_NE(Call("GET", "/events", with, "", "{\"version\":1}").find("data: {\"version\":1}"),
            std::string::npos);
  // The session acts for alice, from our own origin only.
  auto own = Call("POST", "/api/override", with + "Origin: http://127.0.0.1\r\n", "{}");
  EXPECT_EQ(StatusOf(own), 200) << own;
  EXPECT_NE(own.find("\"by\":\"alice\""), std::string::npos);
  auto cross = Call("POST", "/api/override", with + "Origin: http://evil.example\r\n", "{}");
  EXPECT_EQ(StatusOf(cross), 403) << cross;

  auto out = Call("POST", "/logout", with);
  EXPECT_EQ(StatusOf(out), 303);
  EXPECT_NE(HeaderOf(out, "Set-Cookie").find("Max-Age=0"), std::string::npos);
  EXPECT_EQ(StatusOf(Call("GET", "/api/state", with)), 401);
}

TEST_F(WebTest, MetricsFollowTheConfiguredAccess) {
  EXPECT_EQ(StatusOf(Call("GET", "/metrics")), 401);  // kToken
  auto m = Call("GET", "/metrics", "Authorization: Bearer noc-tok\r\n");
  EXPECT_NE(m.find("x 1\nextra 2\n"), std::string::npos) << m;
  StopServer();
  StartServer(MetricsAccess::kLoopback);  // the test is a loopback peer
  EXPECT_EQ(StatusOf(Call("GET", "/metrics")), 200);
  StopServer();
  StartServer(MetricsAccess::kOpen);
  EXPECT_EQ(StatusOf(Call("GET", "/metrics")), 200);
}

// Error bodies are JSON whatever the input: control characters and bytes
// that are not UTF-8, in the path and in an override's site id.
TEST_F(WebTest, ErrorBodiesAreValidJsonWhateverTheInput) {
  auto lost = Call("GET", "/no%00such\xff\xfe\"\\");
  EXPECT_EQ(StatusOf(lost), 404);
  auto j = nlohmann::json::parse(BodyOf(lost), nullptr, false);
  ASSERT_TRUE(j.is_object()) << BodyOf(lost);
  EXPECT_NE(j["error"].get<std::string>().find("no such path"), std::string::npos);

  auto r = Call("POST", "/api/override", "Authorization: Bearer noc-tok\r\n",
                "{\"site\":\"WZ\\u0001\\n\\u001f\\\"x\",\"why\":\"t\"}");
  EXPECT_EQ(StatusOf(r), 404) << r;
  auto e = nlohmann::json::parse(BodyOf(r), nullptr, false);
  ASSERT_TRUE(e.is_object()) << BodyOf(r);
  EXPECT_EQ(e["error"], "site: unknown site 'WZ\x01\n\x1f\"x'");
}

TEST_F(WebTest, OversizedRequestsAreRefused) {
  auto r = Call("POST", "/api/override", "Authorization: Bearer noc-tok\r\n",
                std::string(100 * 1024, 'x'));
  EXPECT_EQ(StatusOf(r), 413) << r.substr(0, 200);
  EXPECT_TRUE(nlohmann::json::parse(BodyOf(r), nullptr, false).is_object());
  auto h = Call("GET", "/healthz", "X-Big: " + std::string(32 * 1024, 'y') + "\r\n");
  EXPECT_EQ(StatusOf(h), 413);
}

TEST_F(WebTest, EventStreamsAreBounded) {
  StopServer();
  StartServer(MetricsAccess::kToken, /*max_event_clients=*/1);
  // Hold one stream open on its own socket.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(server_->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  std::string req = "GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer noc-tok\r\n\r\n";
  ASSERT_GT(write(fd, req.data(), req.size()), 0);
  std::string got;
  char buf[1024];
  ssize_t n;
  while (got.find("data:") == std::string::npos && (n = read(fd, buf, sizeof buf)) > 0)
    got.append(buf, n);
  ASSERT_NE(got.find("text/event-stream"), std::string::npos);
  auto second = Call("GET", "/events", "Authorization: Bearer noc-tok\r\n");
  EXPECT_EQ(StatusOf(second), 503) << second;
  close(fd);
}

TEST_F(WebTest, EventsStreamTheCurrentStateThenPublishes) {
  std::thread pub([this]() {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    boost::asio::post(io_, [this]() { server_->Publish("{\"version\":2}"); });
  });
  auto sse = Http(server_->port(),
                  "GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer noc-tok\r\n\r\n",
                  "{\"version\":2}");
  pub.join();
  EXPECT_NE(sse.find("text/event-stream"), std::string::npos);
  EXPECT_NE(sse.find("data: {\"version\":1}"), std::string::npos);
  EXPECT_NE(sse.find("data: {\"version\":2}"), std::string::npos) << sse;
}

}  // namespace
}  // namespace sitepower::web
