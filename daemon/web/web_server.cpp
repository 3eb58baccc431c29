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

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "web/assets.hpp"

namespace sitepower::web {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::ip::tcp;

namespace {
constexpr size_t kMaxBody = 64 * 1024;
constexpr auto kReadTimeout = std::chrono::seconds(30);
constexpr auto kSseHeartbeat = std::chrono::seconds(15);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

tcp::socket& Socket(PlainStream& s) { return s.socket(); }
tcp::socket& Socket(TlsStream& s) { return beast::get_lowest_layer(s).socket(); }
beast::tcp_stream& Tcp(PlainStream& s) { return s; }
beast::tcp_stream& Tcp(TlsStream& s) { return beast::get_lowest_layer(s); }
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
      : io(io), options(std::move(o)), backend(b), acceptor(io) {}
  asio::io_context& io;
  WebOptions options;
  WebBackend& backend;
  tcp::acceptor acceptor;
  std::unique_ptr<asio::ssl::context> tls;   // set: HTTPS only on this port
  std::set<std::shared_ptr<SseClient>> sse;  // live event-stream clients
  std::map<uint64_t, tcp::socket*> conns;    // open connections, closed by Stop()
  uint64_t next_conn = 0;
  bool stopped = false;

  awaitable<void> Accept();
  awaitable<void> Handshake(std::shared_ptr<TlsStream> stream);
  template <class Stream>
  awaitable<void> Session(std::shared_ptr<Stream> stream);
  template <class Stream>
  awaitable<void> ServeEvents(std::shared_ptr<Stream> stream);
};

namespace {

http::response<http::string_body> Reply(http::status status, std::string body, const char* type,
                                        unsigned version) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::server, "sitepowerd");
  res.set(http::field::content_type, type);
  res.set(http::field::cache_control, "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
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
    default:
      return http::status::service_unavailable;
  }
}

std::string JsonError(const std::string& msg) {
  std::string esc;
  for (char c : msg) {
    if (c == '"' || c == '\\') esc += '\\';
    esc += c == '\n' ? ' ' : c;
  }
  return "{\"error\":\"" + esc + "\"}";
}

}  // namespace

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
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    boost::system::error_code ec;
    Tcp(*stream).expires_after(kReadTimeout);
    co_await http::async_read(*stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    auto& req = parser.get();
    std::string target(req.target());
    if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
    const unsigned v = req.version();
    http::response<http::string_body> res;
    if (req.method() == http::verb::get && target == "/events") {
      Tcp(*stream).expires_never();
      co_await ServeEvents(stream);
      break;
    } else if (req.method() == http::verb::get || req.method() == http::verb::head) {
      if (target == "/" || target == "/index.html") {
        res = Reply(http::status::ok, std::string(Asset("index.html")), "text/html; charset=utf-8",
                    v);
      } else if (target == "/app.js") {
        res = Reply(http::status::ok, std::string(Asset("app.js")),
                    "text/javascript; charset=utf-8", v);
      } else if (target == "/style.css") {
        res =
            Reply(http::status::ok, std::string(Asset("style.css")), "text/css; charset=utf-8", v);
      } else if (target == "/api/state") {
        res = Reply(http::status::ok, backend.StateJson(), "application/json", v);
      } else if (target == "/metrics") {
        res = Reply(http::status::ok, backend.MetricsText(), "text/plain; version=0.0.4", v);
      } else if (target == "/healthz") {
        res = Reply(http::status::ok, "ok\n", "text/plain", v);
      } else if (target == "/readyz") {
        bool ready = backend.Ready();
        res = Reply(ready ? http::status::ok : http::status::service_unavailable,
                    ready ? "ready\n" : "starting\n", "text/plain", v);
      } else {
        res = Reply(http::status::not_found, JsonError("no such path: " + target),
                    "application/json", v);
      }
    } else if (req.method() == http::verb::post && target == "/api/override") {
      std::string auth(req[http::field::authorization]);
      std::string token = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
      auto r = backend.Override(token, req.body());
      res = r.ok() ? Reply(http::status::ok, *r, "application/json", v)
                   : Reply(HttpStatus(r.status()), JsonError(r.status().message()),
                           "application/json", v);
    } else {
      res = Reply(http::status::method_not_allowed, JsonError("method not allowed"),
                  "application/json", v);
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

}  // namespace sitepower::web
