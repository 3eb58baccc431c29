#include "web/web_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "web/assets.hpp"
#include "web/login.hpp"

namespace sitepower::web {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::ip::tcp;

namespace {
constexpr size_t kMaxBody = 64 * 1024;
constexpr size_t kMaxHeader = 16 * 1024;
constexpr auto kReadTimeout = std::chrono::seconds(30);
constexpr auto kSseHeartbeat = std::chrono::seconds(15);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// Boost 1.74's beast::string_view is boost's, not std's.
std::string_view Sv(beast::string_view s) { return {s.data(), s.size()}; }

tcp::socket& Socket(PlainStream& s) { return s.socket(); }
tcp::socket& Socket(TlsStream& s) { return beast::get_lowest_layer(s).socket(); }
beast::tcp_stream& Tcp(PlainStream& s) { return s; }
beast::tcp_stream& Tcp(TlsStream& s) { return beast::get_lowest_layer(s); }

// Who may use a route: anyone, a NOC operator, or per WebOptions::metrics_access.
enum class Access { kOpen, kNoc, kMetrics };
enum class Handler {
  kIndex,
  kAppJs,
  kStyle,
  kLoginPage,
  kHealthz,
  kReadyz,
  kLogin,
  kLogout,
  kSession,
  kState,
  kEvents,
  kMetrics,
  kOverride
};
struct Route {
  http::verb method;  // GET routes also answer HEAD
  std::string_view path;
  Access access;
  Handler handler;
};
// The one table the server dispatches from (and that the tests walk).
constexpr Route kRoutes[] = {
    {http::verb::get, "/", Access::kOpen, Handler::kIndex},
    {http::verb::get, "/index.html", Access::kOpen, Handler::kIndex},
    {http::verb::get, "/app.js", Access::kOpen, Handler::kAppJs},
    {http::verb::get, "/style.css", Access::kOpen, Handler::kStyle},
    {http::verb::get, "/login.html", Access::kOpen, Handler::kLoginPage},
    {http::verb::get, "/healthz", Access::kOpen, Handler::kHealthz},
    {http::verb::get, "/readyz", Access::kOpen, Handler::kReadyz},
    {http::verb::post, "/login", Access::kOpen, Handler::kLogin},
    {http::verb::post, "/logout", Access::kNoc, Handler::kLogout},
    {http::verb::get, "/api/session", Access::kNoc, Handler::kSession},
    {http::verb::get, "/api/state", Access::kNoc, Handler::kState},
    {http::verb::get, "/events", Access::kNoc, Handler::kEvents},
    {http::verb::get, "/metrics", Access::kMetrics, Handler::kMetrics},
    {http::verb::post, "/api/override", Access::kNoc, Handler::kOverride},
};
}  // namespace

// One server-sent-events client: holds only the newest state.
struct SseClient {
  explicit SseClient(asio::any_io_executor ex) : wake(ex) {}
  asio::steady_timer wake;
  std::string pending;
  bool dirty = false;
};

struct WebServer::Impl : std::enable_shared_from_this<WebServer::Impl> {
  Impl(asio::io_context& io, WebOptions o, WebBackend& b)
      : io(io),
        options(std::move(o)),
        backend(b),
        acceptor(io),
        sessions(options.session_ttl, options.max_sessions) {}
  asio::io_context& io;
  WebOptions options;
  WebBackend& backend;
  tcp::acceptor acceptor;
  std::unique_ptr<asio::ssl::context> tls;   // set: HTTPS only on this port
  std::set<std::shared_ptr<SseClient>> sse;  // live event-stream clients
  std::map<uint64_t, tcp::socket*> conns;    // open connections, closed by Stop()
  SessionStore sessions;                     // browsers logged in (io thread only)
  uint64_t next_conn = 0;
  bool stopped = false;

  awaitable<void> Accept();
  awaitable<void> Handshake(std::shared_ptr<TlsStream> stream);
  template <class Stream>
  awaitable<void> Session(std::shared_ptr<Stream> stream);
  template <class Stream>
  awaitable<void> ServeEvents(std::shared_ptr<Stream> stream);

  // The operator behind the request's bearer header or session cookie.
  core::Result<std::string> Authorize(const http::request<http::string_body>& req,
                                      const std::string& peer);
  core::Result<std::string> CheckToken(std::string_view token, const std::string& peer);
};

namespace {

http::response<http::string_body> Reply(http::status status, std::string body, const char* type,
                                        unsigned version) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::server, "sitepowerd");
  res.set(http::field::content_type, type);
  res.set(http::field::cache_control, "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

// {"error": msg}, valid JSON whatever bytes msg holds (invalid UTF-8 replaced).
std::string JsonError(const std::string& msg) {
  return nlohmann::json{{"error", msg}}.dump(-1, ' ', false,
                                             nlohmann::json::error_handler_t::replace);
}

http::response<http::string_body> JsonReply(http::status status, const std::string& msg,
                                            unsigned version) {
  return Reply(status, JsonError(msg), "application/json", version);
}

http::status HttpStatus(const core::Status& s) {
  using C = core::Status::Code;
  switch (s.code()) {
    case C::kUnauthenticated:
      return http::status::unauthorized;
    case C::kPermissionDenied:
      return http::status::forbidden;
    case C::kInvalidArgument:
      return http::status::bad_request;
    case C::kNotFound:
      return http::status::not_found;
    case C::kResourceExhausted:
      return http::status::too_many_requests;
    default:
      return http::status::service_unavailable;
  }
}

// A refused credential: the status, a JSON body naming the endpoint and the
// headers that go with it.
http::response<http::string_body> Refusal(const core::Status& why, const Route& route,
                                          unsigned version) {
  auto res = JsonReply(HttpStatus(why),
                       std::string(Sv(http::to_string(route.method))) + " " +
                           std::string(route.path) + ": " + why.message(),
                       version);
  if (why.code() == core::Status::Code::kUnauthenticated)
    res.set(http::field::www_authenticate, "Bearer realm=\"sitepower\"");
  if (why.code() == core::Status::Code::kResourceExhausted) {
    // The authenticator says "retry in N s".
    const std::string& m = why.message();
    auto at = m.rfind("retry in ");
    std::string secs = at == std::string::npos ? "" : m.substr(at + 9);
    secs.resize(std::min(secs.find(' '), secs.size()));
    res.set(http::field::retry_after, secs.empty() ? "60" : secs);
  }
  return res;
}

const Route* FindRoute(http::verb method, std::string_view path, bool* path_known) {
  *path_known = false;
  if (method == http::verb::head) method = http::verb::get;
  for (const Route& r : kRoutes) {
    if (r.path != path) continue;
    *path_known = true;
    if (r.method == method) return &r;
  }
  return nullptr;
}

}  // namespace

core::Result<std::string> WebServer::Impl::CheckToken(std::string_view token,
                                                      const std::string& peer) {
  if (!options.authenticate)
    return core::Status::Unauthenticated("this server has no NOC credentials configured");
  return options.authenticate(token, peer);
}

core::Result<std::string> WebServer::Impl::Authorize(const http::request<http::string_body>& req,
                                                     const std::string& peer) {
  std::string_view auth = Sv(req[http::field::authorization]);
  if (!auth.empty()) {
    constexpr std::string_view kBearer = "Bearer ";
    if (auth.substr(0, kBearer.size()) != kBearer || auth.size() == kBearer.size())
      return core::Status::Unauthenticated("Authorization: expected \"Bearer <token>\"");
    return CheckToken(auth.substr(kBearer.size()), peer);
  }
  std::string id = CookieValue(Sv(req[http::field::cookie]), kSessionCookie);
  if (id.empty())
    return core::Status::Unauthenticated(
        "missing credential: log in at /login.html, or send Authorization: Bearer <NOC token>");
  std::optional<std::string> who = sessions.Find(id, std::chrono::steady_clock::now());
  if (!who)
    return core::Status::Unauthenticated("session expired or unknown: log in at /login.html");
  // A cookie rides along with any request the browser makes; SameSite=Strict
  // stops other sites, and a state change must also come from our own origin.
  std::string_view origin = Sv(req[http::field::origin]);
  if (req.method() != http::verb::get && req.method() != http::verb::head && !origin.empty()) {
    std::string host(req[http::field::host]);
    if (origin != (tls ? "https://" : "http://") + host)
      return core::Status::PermissionDenied("Origin: " + std::string(origin) +
                                            " may not act with this session");
  }
  return *who;
}

awaitable<void> WebServer::Impl::Accept() {
  auto self = shared_from_this();
  while (!stopped) {
    boost::system::error_code ec;
    tcp::socket sock =
        co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || stopped) co_return;
      continue;  // e.g. EMFILE: keep serving the clients we have
    }
    if (tls) {
      auto stream = std::make_shared<TlsStream>(std::move(sock), *tls);
      asio::co_spawn(io, Handshake(stream), asio::detached);
    } else {
      asio::co_spawn(io, Session(std::make_shared<PlainStream>(std::move(sock))), asio::detached);
    }
  }
}

// TLS first; a client that does not finish its handshake in time (or speaks
// plain HTTP to the HTTPS port) is dropped without holding anything.
awaitable<void> WebServer::Impl::Handshake(std::shared_ptr<TlsStream> stream) {
  auto self = shared_from_this();
  boost::system::error_code ec;
  Tcp(*stream).expires_after(kHandshakeTimeout);
  co_await stream->async_handshake(asio::ssl::stream_base::server,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    boost::system::error_code ignored;
    Socket(*stream).close(ignored);
    co_return;
  }
  co_await Session(stream);
}

template <class Stream>
awaitable<void> WebServer::Impl::Session(std::shared_ptr<Stream> stream) {
  auto self = shared_from_this();
  const uint64_t id = next_conn++;
  conns[id] = &Socket(*stream);
  std::string peer;
  bool loopback = false;
  {
    boost::system::error_code ec;
    auto ep = Socket(*stream).remote_endpoint(ec);
    if (!ec) {
      auto addr = ep.address();
      if (addr.is_v6() && addr.to_v6().is_v4_mapped())
        addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
      peer = addr.to_string();
      loopback = addr.is_loopback();
    }
  }
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kMaxHeader);
    parser.body_limit(kMaxBody);
    boost::system::error_code ec;
    Tcp(*stream).expires_after(kReadTimeout);
    co_await http::async_read(*stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == http::error::body_limit || ec == http::error::header_limit) {
        auto res =
            JsonReply(http::status::payload_too_large,
                      "request larger than " + std::to_string(kMaxBody / 1024) + " KiB (body) or " +
                          std::to_string(kMaxHeader / 1024) + " KiB (header)",
                      11);
        res.keep_alive(false);
        co_await http::async_write(*stream, res, asio::redirect_error(asio::use_awaitable, ec));
      }
      break;
    }
    auto& req = parser.get();
    std::string target(req.target());
    if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
    const unsigned v = req.version();
    http::response<http::string_body> res;
    bool path_known = false;
    const Route* route = FindRoute(req.method(), target, &path_known);
    core::Result<std::string> who = std::string();
    if (route && (route->access == Access::kNoc ||
                  (route->access == Access::kMetrics &&
                   (options.metrics_access == MetricsAccess::kToken ||
                    (options.metrics_access == MetricsAccess::kLoopback && !loopback)))))
      who = Authorize(req, peer);
    if (!route) {
      res = path_known
                ? JsonReply(
                      http::status::method_not_allowed,
                      std::string(req.method_string()) + " " + target + ": method not allowed", v)
                : JsonReply(http::status::not_found, "no such path: " + target, v);
    } else if (!who.ok()) {
      res = Refusal(who.status(), *route, v);
    } else if (route->handler == Handler::kEvents) {
      if (sse.size() >= options.max_event_clients) {
        res = JsonReply(
            http::status::service_unavailable,
            "/events: " + std::to_string(options.max_event_clients) + " clients already connected",
            v);
      } else {
        Tcp(*stream).expires_never();
        co_await ServeEvents(stream);
        break;
      }
    } else {
      switch (route->handler) {
        case Handler::kIndex:
          res = Reply(http::status::ok, std::string(Asset("index.html")),
                      "text/html; charset=utf-8", v);
          break;
        case Handler::kAppJs:
          res = Reply(http::status::ok, std::string(Asset("app.js")),
                      "text/javascript; charset=utf-8", v);
          break;
        case Handler::kStyle:
          res = Reply(http::status::ok, std::string(Asset("style.css")), "text/css; charset=utf-8",
                      v);
          break;
        case Handler::kLoginPage:
          res = Reply(http::status::ok, std::string(Asset("login.html")),
                      "text/html; charset=utf-8", v);
          break;
        case Handler::kHealthz:
          res = Reply(http::status::ok, "ok\n", "text/plain", v);
          break;
        case Handler::kReadyz: {
          bool ready = backend.Ready();
          res = Reply(ready ? http::status::ok : http::status::service_unavailable,
                      ready ? "ready\n" : "starting\n", "text/plain", v);
          break;
        }
        case Handler::kLogin: {
          auto op = CheckToken(FormField(req.body(), "token"), peer);
          std::string sid = op.ok() ? sessions.Create(*op, std::chrono::steady_clock::now()) : "";
          if (op.ok() && !sid.empty()) {
            res = Reply(http::status::see_other, "", "text/plain", v);
            res.set(http::field::location, "/");
            res.set(http::field::set_cookie, SessionCookie(sid, sessions.ttl(), tls != nullptr));
          } else {
            std::string page(Asset("login.html"));
            std::string why = op.ok() ? "no session could be made" : op.status().message();
            if (auto at = page.find("<!--error-->"); at != std::string::npos)
              page.replace(at, 12,
                           "<p class=\"err\" id=\"login-error\">" + HtmlEscape(why) + "</p>");
            res = Reply(op.ok() ? http::status::service_unavailable : HttpStatus(op.status()),
                        std::move(page), "text/html; charset=utf-8", v);
          }
          break;
        }
        case Handler::kLogout:
          sessions.End(CookieValue(Sv(req[http::field::cookie]), kSessionCookie));
          res = Reply(http::status::see_other, "", "text/plain", v);
          res.set(http::field::location, "/login.html");
          res.set(http::field::set_cookie,
                  SessionCookie("", std::chrono::seconds(0), tls != nullptr));
          break;
        case Handler::kSession:
          res = Reply(http::status::ok, nlohmann::json{{"operator", *who}}.dump(),
                      "application/json", v);
          break;
        case Handler::kState:
          res = Reply(http::status::ok, backend.StateJson(), "application/json", v);
          break;
        case Handler::kMetrics:
          res =
              Reply(http::status::ok,
                    backend.MetricsText() + (options.extra_metrics ? options.extra_metrics() : ""),
                    "text/plain; version=0.0.4", v);
          break;
        case Handler::kOverride: {
          auto r = backend.Override(*who, req.body());
          res = r.ok() ? Reply(http::status::ok, *r, "application/json", v)
                       : JsonReply(HttpStatus(r.status()), r.status().message(), v);
          break;
        }
        case Handler::kEvents:
          break;  // served above
      }
    }
    res.keep_alive(req.keep_alive());
    if (req.method() == http::verb::head) res.body().clear();
    co_await http::async_write(*stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !res.keep_alive()) break;
  }
  boost::system::error_code ignored;
  Socket(*stream).shutdown(tcp::socket::shutdown_both, ignored);
  Socket(*stream).close(ignored);
  conns.erase(id);
}

template <class Stream>
awaitable<void> WebServer::Impl::ServeEvents(std::shared_ptr<Stream> stream) {
  auto self = shared_from_this();
  auto client = std::make_shared<SseClient>(stream->get_executor());
  client->pending = backend.StateJson();
  client->dirty = true;
  sse.insert(client);
  boost::system::error_code ec;
  std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
      "Connection: keep-alive\r\nX-Accel-Buffering: no\r\n\r\n";
  co_await asio::async_write(*stream, asio::buffer(head),
                             asio::redirect_error(asio::use_awaitable, ec));
  while (!ec && !stopped) {
    if (client->dirty) {
      std::string msg = "event: state\ndata: " + client->pending + "\n\n";
      client->dirty = false;
      co_await asio::async_write(*stream, asio::buffer(msg),
                                 asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    client->wake.expires_after(kSseHeartbeat);
    boost::system::error_code wait_ec;
    co_await client->wake.async_wait(asio::redirect_error(asio::use_awaitable, wait_ec));
    if (!wait_ec && !client->dirty) {  // heartbeat keeps proxies and browsers honest
      static const std::string ping = ": ping\n\n";
      co_await asio::async_write(*stream, asio::buffer(ping),
                                 asio::redirect_error(asio::use_awaitable, ec));
    }
  }
  sse.erase(client);
}

WebServer::WebServer(asio::io_context& io, WebOptions options, WebBackend& backend)
    : impl_(std::make_shared<Impl>(io, std::move(options), backend)) {}

WebServer::~WebServer() { Stop(); }

core::Status WebServer::Start() {
  const std::string& l = impl_->options.listen;
  auto colon = l.rfind(':');
  if (colon == std::string::npos)
    return core::Status::InvalidArgument("http listen " + l + ": expected host:port");
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(l.substr(0, colon), ec);
  if (ec) return core::Status::InvalidArgument("http listen " + l + ": " + ec.message());
  tcp::endpoint ep(addr, static_cast<uint16_t>(std::stoi(l.substr(colon + 1))));
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return core::Status::Unavailable("http listen " + l + ": " + ec.message());
  if (!impl_->options.tls_cert.empty()) {
    // HTTPS with the same certificate as the gRPC port (config `tls:`).
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1);
    ctx->use_certificate_chain_file(impl_->options.tls_cert, ec);
    if (!ec) ctx->use_private_key_file(impl_->options.tls_key, asio::ssl::context::pem, ec);
    if (ec)
      return core::Status::InvalidArgument("https " + l + ": certificate " +
                                           impl_->options.tls_cert + " / key " +
                                           impl_->options.tls_key + ": " + ec.message());
    impl_->tls = std::move(ctx);
  }
  asio::co_spawn(impl_->io, impl_->Accept(), asio::detached);
  return core::Status::Ok();
}

uint16_t WebServer::port() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void WebServer::Publish(std::string state_json) {
  for (const auto& c : impl_->sse) {
    c->pending = state_json;
    c->dirty = true;
    c->wake.cancel();
  }
}

void WebServer::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  for (const auto& c : impl_->sse) c->wake.cancel();
  for (const auto& [id, sock] : impl_->conns) sock->close(ec);
}

size_t WebServer::clients() const { return impl_->sse.size(); }

std::vector<RouteInfo> WebServer::Routes() {
  std::vector<RouteInfo> out;
  for (const Route& r : kRoutes)
    out.push_back({std::string(Sv(http::to_string(r.method))), std::string(r.path),
                   r.access == Access::kOpen  ? "open"
                   : r.access == Access::kNoc ? "noc"
                                              : "metrics"});
  return out;
}

}  // namespace sitepower::web
