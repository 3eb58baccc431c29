// The web server over real HTTP on loopback with a fake backend.
#include "web/web_server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include <thread>

namespace sitepower::web {
namespace {

class FakeBackend : public WebBackend {
 public:
  std::string StateJson() override { return "{\"version\":1}"; }
  std::string MetricsText() override { return "# TYPE x counter\nx 1\n"; }
  bool Ready() override { return true; }
  core::Result<std::string> Override(const std::string& token, const std::string&) override {
    if (token.empty()) return core::Status::Unauthenticated("no token");
    if (token == "crew") return core::Status::PermissionDenied("crew");
    return std::string("{\"ok\":true}");
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

class WebTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<WebServer>(io_, WebOptions{"127.0.0.1:0", "", ""}, backend_);
    ASSERT_TRUE(server_->Start().ok());
    thread_ = std::thread([this]() { io_.run(); });
  }
  void TearDown() override {
    boost::asio::post(io_, [this]() { server_->Stop(); });
    io_.stop();
    thread_.join();
  }
  boost::asio::io_context io_;
  FakeBackend backend_;
  std::unique_ptr<WebServer> server_;
  std::thread thread_;
};

TEST_F(WebTest, ServesDashboardStateMetricsAndHealth) {
  auto page = Http(server_->port(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(page.find("200 OK"), std::string::npos);
  EXPECT_NE(page.find("sitepower NOC"), std::string::npos);
  EXPECT_NE(Http(server_->port(), "GET /app.js HTTP/1.1\r\nConnection: close\r\n\r\n")
                .find("EventSource"),
            std::string::npos);
  EXPECT_NE(Http(server_->port(), "GET /api/state HTTP/1.1\r\nConnection: close\r\n\r\n")
                .find("{\"version\":1}"),
            std::string::npos);
  EXPECT_NE(Http(server_->port(), "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").find("x 1"),
            std::string::npos);
  EXPECT_NE(
      Http(server_->port(), "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").find("200 OK"),
      std::string::npos);
  EXPECT_NE(Http(server_->port(), "GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n").find("404"),
            std::string::npos);
  EXPECT_NE(Http(server_->port(), "DELETE / HTTP/1.1\r\nConnection: close\r\n\r\n").find("405"),
            std::string::npos);
}

TEST_F(WebTest, OverrideAuthCodes) {
  auto post = [this](const std::string& auth) {
    std::string body = "{}";
    return Http(server_->port(), "POST /api/override HTTP/1.1\r\nHost: x\r\n" + auth +
                                     "Content-Length: 2\r\nConnection: close\r\n\r\n" + body);
  };
  EXPECT_NE(post("").find("401"), std::string::npos);
  EXPECT_NE(post("Authorization: Bearer crew\r\n").find("403"), std::string::npos);
  EXPECT_NE(post("Authorization: Bearer noc\r\n").find("200 OK"), std::string::npos);
}

TEST_F(WebTest, EventsStreamTheCurrentStateThenPublishes) {
  std::thread pub([this]() {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    boost::asio::post(io_, [this]() { server_->Publish("{\"version\":2}"); });
  });
  auto sse = Http(server_->port(), "GET /events HTTP/1.1\r\nHost: x\r\n\r\n", "{\"version\":2}");
  pub.join();
  EXPECT_NE(sse.find("text/event-stream"), std::string::npos);
  EXPECT_NE(sse.find("data: {\"version\":1}"), std::string::npos);
  EXPECT_NE(sse.find("data: {\"version\":2}"), std::string::npos) << sse;
}

}  // namespace
}  // namespace sitepower::web
