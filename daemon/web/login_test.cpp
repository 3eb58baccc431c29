// Sessions and the login form's parsers, without a socket.
#include "web/login.hpp"

#include <gtest/gtest.h>

namespace sitepower::web {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

TEST(SessionStoreTest, SessionsAreRandomLiveForTheirTtlAndEnd) {
  SessionStore store(seconds(60), 10);
  const SessionStore::TimePoint t0{hours(1)};
  std::string a = store.Create("alice", t0), b = store.Create("bob", t0);
  EXPECT_EQ(a.size(), 64u);
  EXPECT_NE(a, b);
  EXPECT_EQ(store.Find(a, t0 + seconds(59)), "alice");
  EXPECT_EQ(store.Find(b, t0), "bob");
  EXPECT_EQ(store.Find("forged", t0), std::nullopt);
  EXPECT_EQ(store.Find(a, t0 + seconds(60)), std::nullopt);  // expired, and forgotten
  EXPECT_EQ(store.size(), 1u);
  store.End(b);
  EXPECT_EQ(store.Find(b, t0), std::nullopt);
}

TEST(SessionStoreTest, TheOldestSessionEndsBeyondTheBound) {
  SessionStore store(seconds(60), 2);
  const SessionStore::TimePoint t0{hours(1)};
  std::string first = store.Create("a", t0);
  std::string second = store.Create("b", t0 + seconds(1));
  std::string third = store.Create("c", t0 + seconds(2));
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.Find(first, t0 + seconds(3)), std::nullopt);
  EXPECT_EQ(store.Find(second, t0 + seconds(3)), "b");
  EXPECT_EQ(store.Find(third, t0 + seconds(3)), "c");
}

TEST(LoginTest, CookieAttributes) {
  EXPECT_EQ(SessionCookie("abc", seconds(10), false),
            "sp_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=10");
  EXPECT_EQ(SessionCookie("", seconds(0), true),
            "sp_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure");
}

TEST(LoginTest, ParsesCookiesAndForms) {
  EXPECT_EQ(CookieValue("a=1; sp_session=xyz; b=2", "sp_session"), "xyz");
  EXPECT_EQ(CookieValue("xsp_session=1", "sp_session"), "");
  EXPECT_EQ(CookieValue("", "sp_session"), "");
  EXPECT_EQ(FormField("user=x&token=a%2Bb+c%3d%&z=1", "token"), "a+b c=%");
  EXPECT_EQ(FormField("tokens=1&token", "token"), "");
  EXPECT_EQ(FormField("token=%e4%BD%A0", "token"), "\xe4\xbd\xa0");
  EXPECT_EQ(HtmlEscape("<b a=\"1\">&'"), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
}

}  // namespace
}  // namespace sitepower::web
