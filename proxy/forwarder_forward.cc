// The forward proxy's steps (forward_proxy.enabled): Proxy-Authorization, absolute-form
// requests, and CONNECT, either tunnelled blind or intercepted with a leaf from the local CA.
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <filesystem>

#include "proxy/client_session.h"
#include "proxy/forwarder.h"
#include "proxy/forwarder_exchange.h"
#include "proxy/redaction.h"

namespace lp {
namespace {

using namespace asio::experimental::awaitable_operators;

constexpr size_t kTunnelReadSize = 64 * 1024;

// Copies one direction of a tunnel until EOF, an error or (reads only) `read_silence` without a
// byte; counts the bytes. The bytes are copied out of the reader's buffer before the write,
// since the other direction reads into the same thread buffer meanwhile; the copy lives only
// while it is written, so an idle tunnel holds no buffer.
template <typename Reader, typename Writer>
awaitable<IoResult> pump(Reader& from, Writer& to, std::chrono::milliseconds read_silence,
                         std::chrono::milliseconds write_timeout, uint64_t* bytes) {
  while (true) {
    const ReadResult r = co_await from.read_some(kTunnelReadSize, deadline_after(read_silence));
    if (!r.io.ok()) co_return r.io;
    const std::string chunk(r.data);
    const IoResult w = co_await to.write_all(chunk, deadline_after(write_timeout));
    if (!w.ok()) co_return w;
    *bytes += chunk.size();
  }
}

}  // namespace

bool Forwarder::is_proxy_request(const RequestHead& head) {
  return head.method == "CONNECT" ||
         (!head.target.empty() && head.target.front() != '/' && head.target != "*");
}

void Forwarder::setup_forward_proxy() {
  const ForwardProxyConfig& fp = config_.forward_proxy;
  std::string error;
  forward_policy_ = ForwardPolicy::create(fp, &error);
  if (!forward_policy_) throw std::runtime_error("forward_proxy: " + error);
  forward_tls_ = TlsClientContext::create("", true, &error);
  if (!forward_tls_) throw std::runtime_error("forward_proxy: " + error);
  tunnel_counters_ = metrics_.route("tunnel");
  if (fp.intercept.empty()) return;
  std::shared_ptr<const ForwardCa> ca;
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(fs::path(fp.ca_dir) / kCaKeyFile, ec) &&
      !fs::exists(fs::path(fp.ca_dir) / kCaCertFile, ec)) {
    // The first start with interception on makes the CA (`logging-proxy ca init` does it ahead).
    ca = init_ca(fp.ca_dir, &error);
    if (!ca) throw std::runtime_error("forward_proxy.ca_dir: " + error);
    console_.line("[proxy] created the forward proxy's CA in " + fp.ca_dir +
                  " (trust it: logging-proxy ca export)");
  } else {
    ca = load_ca(fp.ca_dir, &error);
    if (!ca) throw std::runtime_error("forward_proxy.ca_dir: " + error);
  }
  leaves_ = std::make_unique<LeafCertCache>(std::move(ca));
  std::string hosts;
  for (const auto& h : fp.intercept) hosts += (hosts.empty() ? "" : ", ") + h;
  std::string excluded;
  for (const auto& h : fp.exclude) excluded += (excluded.empty() ? "" : ", ") + h;
  console_.line("[proxy] WARNING: the forward proxy decrypts and captures TLS to " + hosts +
                (excluded.empty() ? "" : " (except " + excluded + ")") +
                " for clients that trust " + ca_cert_path(fp.ca_dir));
}

awaitable<Forwarder::ProxyRequestResult> Forwarder::serve_proxy_request(ClientConnection& client,
                                                                        const RequestHead& head,
                                                                        UpstreamPool& pool) {
  ProxyRequestResult result;
  if (forward_policy_->requires_auth()) {
    const std::string* given = find_header(head.headers, "Proxy-Authorization");
    const ProxyAuthResult auth = forward_policy_->authenticate(
        given ? std::optional<std::string_view>(*given) : std::nullopt);
    if (auth.status != ProxyAuthResult::Status::kOk) {
      std::vector<Header> challenge{
          Header{"Proxy-Authenticate", "Basic realm=\"logging-proxy\", charset=\"UTF-8\""}};
      co_await refuse_proxy_request(client, head, 407,
                                    auth.status == ProxyAuthResult::Status::kMissing
                                        ? "proxy authentication required"
                                        : "proxy credentials not accepted",
                                    std::move(challenge));
      co_return result;
    }
  }
  std::string error;
  if (head.method != "CONNECT") {
    std::optional<ForwardTarget> target = parse_absolute_target(head.target, &error);
    if (!target) {
      co_await refuse_proxy_request(client, head, 400, error);
      co_return result;
    }
    result.keep_alive = co_await serve_request(client, head, pool, &*target);
    co_return result;
  }
  std::optional<ForwardTarget> target = parse_connect_target(head.target, &error);
  if (!target) {
    co_await refuse_proxy_request(client, head, 400, error);
    co_return result;
  }
  if (leaves_ && forward_policy_->decide(target->host) == ForwardAction::kIntercept) {
    co_return co_await intercept(client, head, *target);
  }
  co_return co_await tunnel(client, head, *target, pool);
}

awaitable<bool> Forwarder::refuse_proxy_request(ClientConnection& client, const RequestHead& head,
                                                int status, const std::string& reason,
                                                std::vector<Header> extra_headers) {
  // The target is echoed masked: an absolute URL may carry ?key=... .
  console_.line("[proxy] " + client.peer_ip() + ": " + std::to_string(status) + " " + head.method +
                " " + redact_query(head.target) + ": " + reason);
  co_await client.write_all(plain_response(status, reason, extra_headers),
                            deadline_after(std::chrono::seconds(1)));
  co_return false;
}

awaitable<Forwarder::ProxyRequestResult> Forwarder::intercept(ClientConnection& client,
                                                              const RequestHead& head,
                                                              const ForwardTarget& target) {
  ProxyRequestResult result;
  std::string error;
  std::shared_ptr<const LeafCert> leaf = leaves_->get(target.host, &error);
  if (!leaf) {
    co_await refuse_proxy_request(client, head, 502,
                                  "no certificate for " + target.host + ": " + error);
    co_return result;
  }
  if (!client.buffer.empty()) {
    // A ClientHello sent before our answer: the TLS layer cannot be handed those bytes.
    co_await refuse_proxy_request(client, head, 400,
                                  "bytes sent after CONNECT before its answer (wait for the 200)");
    co_return result;
  }
  const IoResult sent = co_await client.write_all("HTTP/1.1 200 Connection Established\r\n\r\n",
                                                  deadline_after(config_.server.header_timeout));
  if (!sent.ok()) co_return result;
  const IoResult tls =
      co_await client.start_tls(leaf->ctx, deadline_after(config_.server.header_timeout));
  if (!tls.ok()) {
    console_.line("[proxy] " + client.peer_ip() + ": CONNECT " + target.authority() +
                  ": TLS handshake with the client failed (" + tls.error +
                  "); does it trust the forward proxy's CA?");
    co_return result;
  }
  result.keep_alive = true;
  result.intercepted = target;
  co_return result;
}

awaitable<bool> Forwarder::serve_intercepted(ClientConnection& client, const RequestHead& head,
                                             const ForwardTarget& target, UpstreamPool& pool) {
  if (!forward_proxy_enabled()) {
    // A reload turned the forward proxy off while this connection was intercepted.
    co_return co_await refuse_proxy_request(client, head, 503,
                                            "the forward proxy is no longer enabled");
  }
  ForwardTarget t = target;
  t.origin_form = head.target;
  co_return co_await serve_request(client, head, pool, &t);
}

awaitable<Forwarder::ProxyRequestResult> Forwarder::tunnel(ClientConnection& client,
                                                           const RequestHead& head,
                                                           const ForwardTarget& target,
                                                           UpstreamPool& pool) {
  ProxyRequestResult result;
  Exchange ex(client, head, pool);  // the pool stays unused: a tunnel's connection is its own
  start_exchange(ex);
  ex.info.proxy_path = target.authority();
  ex.info.route = "tunnel";
  ex.info.destination = target.authority();
  ex.counters = tunnel_counters_;
  begin_exchange(ex, nullptr);

  Endpoint endpoint;
  endpoint.host = target.host;
  endpoint.port = target.port;
  endpoint.key = "tunnel|" + target.authority();
  endpoint.proxy = select_upstream_proxy(nullptr, false, true, target.host, target.port);
  endpoint.generation = generation_;
  UpstreamConnection upstream(client.socket().get_executor(), endpoint);
  std::string error;
  const bool opened =
      co_await upstream.open(deadline_after(config_.server.connect_timeout), &error);
  if (!opened) {
    metrics_.upstream_connect_failures.fetch_add(1, std::memory_order_relaxed);
    ex.summary.outcome = Outcome::kUpstreamError;
    ex.summary.error = error;
    ex.summary.status = 502;
    co_await client.write_all(
        plain_response(502, "CONNECT " + target.authority() + ": " + error, {}),
        deadline_after(std::chrono::seconds(1)));
    ex.client_close = true;
    finish(ex);
    co_return result;
  }
  metrics_.upstream_connections_opened.fetch_add(1, std::memory_order_relaxed);
  ResponseHead established;
  established.status = 200;
  established.reason = "Connection Established";
  ex.summary.status = 200;
  if (ex.observer) {
    ex.observer->on_request_head(head);
    ex.observer->on_response_head(established);
  }
  IoResult io = co_await client.write_all("HTTP/1.1 200 Connection Established\r\n\r\n",
                                          deadline_after(config_.server.upstream_timeout));
  if (io.ok() && !client.buffer.empty()) {
    // Bytes the client sent right behind its CONNECT (a ClientHello) go first.
    io =
        co_await upstream.write_all(client.buffer, deadline_after(config_.server.upstream_timeout));
    if (io.ok()) ex.summary.request_body_bytes += client.buffer.size();
    client.buffer.clear();
  }
  if (io.ok()) {
    // Until either side closes (or is silent past upstream_timeout); the client may wait on a
    // long answer without sending a byte, so only the upstream's silence is bounded.
    const auto silence = config_.server.upstream_timeout;
    uint64_t up = 0, down = 0;
    auto ended = co_await (pump(client, upstream, std::chrono::milliseconds(0), silence, &up) ||
                           pump(upstream, client, silence, silence, &down));
    ex.summary.request_body_bytes += up;
    ex.summary.response_body_bytes += down;
    io = ended.index() == 0 ? std::get<0>(ended) : std::get<1>(ended);
  }
  if (io.status != IoResult::Status::kEof && !io.ok()) {
    ex.summary.outcome = Outcome::kClientAborted;
    ex.summary.error = io.error;
  }
  ex.client_close = true;
  finish(ex);
  co_return result;
}

void Forwarder::route_forward(Exchange& ex, const ForwardTarget& target) {
  auto [route, counters] = forward_route(target);
  ex.route = route;
  ex.counters = counters ? counters : no_route_counters_;
  ex.forward_tls = target.tls;
  const std::string url = target.origin() + target.origin_form;
  ex.info.proxy_path = url;
  if (route) {
    ex.info.route = route->config->name;
    ex.upstream_target = target.origin_form;
    ex.info.destination = url;
  }
  begin_exchange(ex, route ? route->config : nullptr);
}

std::pair<const Forwarder::Route*, RouteRequestCounters*> Forwarder::forward_route(
    const ForwardTarget& target) {
  const std::string origin = target.origin();
  // A configured route to this very origin lends its trust, headers, logging and name.
  if (auto r = route_by_origin_.find(origin); r != route_by_origin_.end()) {
    return {&routes_[r->second], route_counters_[r->second]};
  }
  std::lock_guard<std::mutex> lock(forward_mu_);
  auto it = forward_routes_.find(origin);
  if (it == forward_routes_.end()) {
    if (forward_routes_.size() >= kMaxForwardRoutes) return {nullptr, nullptr};
    auto fr = std::make_unique<ForwardRoute>();
    const bool default_port = target.port == (target.tls ? 443 : 80);
    fr->config.name =
        "forward:" + target.host + (default_port ? "" : ":" + std::to_string(target.port));
    fr->config.destination.scheme = target.tls ? "https" : "http";
    fr->config.destination.host = target.host;
    fr->config.destination.port = target.port;
    fr->config.destination.path = "/";
    fr->endpoint.host = target.host;
    fr->endpoint.port = target.port;
    fr->endpoint.tls = target.tls ? forward_tls_.get() : nullptr;
    fr->endpoint.proxy =
        select_upstream_proxy(nullptr, false, target.tls, target.host, target.port);
    fr->endpoint.key = origin + "|forward";
    fr->endpoint.generation = generation_;
    fr->route = {&fr->config, &fr->endpoint};
    fr->counters = metrics_.route(fr->config.name);
    it = forward_routes_.emplace(origin, std::move(fr)).first;
  }
  return {&it->second->route, it->second->counters};
}

}  // namespace lp
