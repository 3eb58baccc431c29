// The browser's login: operator sessions behind an HttpOnly, SameSite=Strict
// cookie, and the small parsers the login form needs. No Beast here.
//
// Threading: a SessionStore is not thread-safe; the web server's io thread
// owns it.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace sitepower::web {

inline constexpr std::string_view kSessionCookie = "sp_session";

class SessionStore {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  SessionStore(std::chrono::seconds ttl, size_t max_sessions)
      : ttl_(ttl), max_sessions_(max_sessions) {}

  // A new session of `operator_name` with a random 256-bit id (hex), live
  // for ttl(); expired sessions are dropped, and the oldest one when there
  // are max_sessions. "" when no random id could be made.
  std::string Create(const std::string& operator_name, TimePoint now);
  // The operator of a live session; nullopt for an unknown or expired id.
  std::optional<std::string> Find(const std::string& id, TimePoint now);
  void End(const std::string& id) { sessions_.erase(id); }
  std::chrono::seconds ttl() const { return ttl_; }
  size_t size() const { return sessions_.size(); }

 private:
  struct Session {
    std::string operator_name;
    TimePoint expires;
  };
  const std::chrono::seconds ttl_;
  const size_t max_sessions_;
  std::map<std::string, Session> sessions_;
};

// The Set-Cookie value for session `id`: Path=/, HttpOnly, SameSite=Strict,
// Max-Age, and Secure when the port speaks TLS. An empty id with max_age 0
// ends the session in the browser.
std::string SessionCookie(std::string_view id, std::chrono::seconds max_age, bool secure);

// The value of cookie `name` in a Cookie header; "" when absent.
std::string CookieValue(std::string_view cookie_header, std::string_view name);

// Field `name` of an application/x-www-form-urlencoded body, decoded
// ('+' and %XX); "" when absent.
std::string FormField(std::string_view body, std::string_view name);

// Text made safe inside HTML elements and attribute values.
std::string HtmlEscape(std::string_view text);

}  // namespace sitepower::web
