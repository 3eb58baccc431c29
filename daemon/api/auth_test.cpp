// The authenticator alone: roles, constant-time lookup results, throttling.
#include "api/auth.hpp"

#include <gtest/gtest.h>

namespace sitepower::api {
namespace {

class AuthTest : public ::testing::Test {
 protected:
  Authenticator Make(int free_failures, bool slow_loopback = false) {
    Authenticator::Options o;
    o.free_failures = free_failures;
    o.base_delay = std::chrono::seconds(2);
    o.max_delay = std::chrono::seconds(30);
    o.slow_loopback = slow_loopback;
    o.now = [this]() { return now_; };
    return Authenticator({{Sha256Hex("crew-tok"), {Principal::Role::kCrew, "A1"}},
                          {Sha256Hex("noc-tok"), {Principal::Role::kNoc, "alice"}}},
                         o);
  }
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
};

TEST_F(AuthTest, KnownTokensNameTheirPrincipal) {
  auto a = Make(5);
  auto noc = a.Check("Bearer noc-tok", "10.0.0.1", "http");
  ASSERT_TRUE(noc.ok());
  EXPECT_EQ(noc->role, Principal::Role::kNoc);
  EXPECT_EQ(noc->name, "alice");
  EXPECT_EQ(a.Check("Bearer crew-tok", "10.0.0.1", "grpc")->name, "A1");
  for (const char* bad :
       {"", "Bearer ", "Basic abc", "bearer noc-tok", "Bearer noc-to", "Bearer noc-tokx"}) {
    auto r = a.Check(bad, "10.0.0.1", "http");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), core::Status::Code::kUnauthenticated) << bad;
  }
}

TEST_F(AuthTest, FailuresPerPeerAreSlowedDownThenForgiven) {
  auto a = Make(3);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(a.Check("Bearer x", "10.0.0.9", "grpc").ok());
  EXPECT_TRUE(a.Check("Bearer noc-tok", "10.0.0.9", "grpc").ok());  // 3 free: still checked
  EXPECT_EQ(a.Failures("10.0.0.9"), 0u);                            // a success clears
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(a.Check("Bearer x", "10.0.0.9", "grpc").ok());
  auto blocked = a.Check("Bearer noc-tok", "10.0.0.9", "grpc");
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.status().code(), core::Status::Code::kResourceExhausted);
  EXPECT_NE(blocked.status().message().find("retry in 2 s"), std::string::npos)
      << blocked.status().message();
  EXPECT_TRUE(a.Check("Bearer noc-tok", "10.0.0.10", "grpc").ok());  // other peers unaffected
  EXPECT_NE(a.MetricsText().find("sitepower_auth_slowed_peers 1"), std::string::npos);
  EXPECT_NE(a.MetricsText().find("sitepower_auth_failures_total{transport=\"grpc\"} 7"),
            std::string::npos)
      << a.MetricsText();
  EXPECT_NE(a.MetricsText().find("sitepower_auth_throttled_total{transport=\"grpc\"} 1"),
            std::string::npos);
  EXPECT_NE(a.MetricsText().find("sitepower_auth_peer_failures{peer=\"10.0.0.9\"} 4"),
            std::string::npos)
      << a.MetricsText();
  now_ += std::chrono::seconds(3);
  EXPECT_TRUE(a.Check("Bearer noc-tok", "10.0.0.9", "grpc").ok());
}

TEST_F(AuthTest, DelaysDoubleUpToTheCap) {
  auto a = Make(0);
  std::vector<std::string> waits;
  for (int i = 0; i < 6; ++i) {
    EXPECT_FALSE(a.Check("Bearer x", "10.0.0.9", "http").ok());
    auto r = a.Check("Bearer x", "10.0.0.9", "http");
    waits.push_back(r.status().message().substr(r.status().message().rfind("retry in")));
    now_ += std::chrono::minutes(5);
  }
  EXPECT_EQ(waits, (std::vector<std::string>{"retry in 2 s", "retry in 4 s", "retry in 8 s",
                                             "retry in 16 s", "retry in 30 s", "retry in 30 s"}));
}

TEST_F(AuthTest, LoopbackIsCountedButNotSlowedUnlessAsked) {
  auto a = Make(1);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(a.Check("Bearer x", "127.0.0.1", "grpc").ok());
  EXPECT_EQ(a.Failures("127.0.0.1"), 5u);
  EXPECT_TRUE(a.Check("Bearer noc-tok", "127.0.0.1", "grpc").ok());
  auto strict = Make(1, /*slow_loopback=*/true);
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(strict.Check("Bearer x", "::1", "grpc").ok());
  EXPECT_EQ(strict.Check("Bearer noc-tok", "::1", "grpc").status().code(),
            core::Status::Code::kResourceExhausted);
}

TEST(PeerAddressTest, DropsSchemeAndPort) {
  EXPECT_EQ(PeerAddress("ipv4:10.1.2.3:40000"), "10.1.2.3");
  EXPECT_EQ(PeerAddress("ipv6:[::1]:5"), "::1");
  EXPECT_EQ(PeerAddress("10.1.2.3"), "10.1.2.3");
  EXPECT_EQ(PeerAddress("2001:db8::1"), "2001:db8::1");
}

}  // namespace
}  // namespace sitepower::api
