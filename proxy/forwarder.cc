#include "proxy/forwarder.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "common/capture_wire.h"
#include "common/ids.h"
#include "common/json_writer.h"
#include "proxy/async_body.h"
#include "proxy/forward_headers.h"
#include "proxy/forwarder_exchange.h"
#include "proxy/redaction.h"

namespace lp {
namespace {

// A local response (404, 502, ...) may arrive before the client sent its body; reading a
// small body first lets the client see the answer instead of a reset.
constexpr uint64_t kMaxDrainBytes = 1 << 20;

}  // namespace

std::string_view outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kComplete:
      return "complete";
    case Outcome::kClientAborted:
      return "client_aborted";
    case Outcome::kUpstreamError:
      return "upstream_error";
    case Outcome::kTruncated:
      return "truncated";
  }
  return "unknown";
}

namespace {
std::atomic<uint64_t> next_generation{1};
}  // namespace

Forwarder::Forwarder(const Config& config, ExchangeObserverFactory* capture,
                     const ForwarderEnv& env)
    : config_(config),
      console_(env.console),
      capture_(capture),
      router_([&] {
        std::vector<RouteSpec> specs;
        for (const auto& r : config.routes) specs.push_back({r.name, r.pattern});
        return specs;
      }()),
      metrics_(env.metrics),
      no_route_counters_(env.metrics.route("")),
      stopping_(env.stopping),
      generation_(next_generation.fetch_add(1)) {
  limits_.max_head_bytes = config.server.max_header_bytes;
  std::string proxy_error;
  if (!config.server.upstream_proxy.empty()) {
    auto p = parse_upstream_proxy(config.server.upstream_proxy, &proxy_error);
    if (!p) throw std::runtime_error("server.upstream_proxy: " + proxy_error);
    server_proxy_ = std::make_unique<UpstreamProxy>(std::move(*p));
  }
  if (config.server.upstream_proxy_from_env) {
    env_https_proxy_ = proxy_from_environment(std::getenv, "https");
    env_http_proxy_ = proxy_from_environment(std::getenv, "http");
    for (const EnvironmentProxy* e : {&env_https_proxy_, &env_http_proxy_}) {
      if (!e->error.empty()) throw std::runtime_error("$" + e->variable + ": " + e->error);
    }
  }
  std::map<std::pair<std::string, bool>, const TlsClientContext*> contexts;
  std::map<std::string, const Endpoint*> endpoints;
  for (const auto& r : config.routes) {
    const UpstreamProxy* route_proxy = nullptr;
    if (r.upstream_proxy && !r.upstream_proxy->empty()) {
      auto p = parse_upstream_proxy(*r.upstream_proxy, &proxy_error);
      if (!p) throw std::runtime_error("route '" + r.name + "': upstream_proxy: " + proxy_error);
      route_proxies_.push_back(std::make_unique<UpstreamProxy>(std::move(*p)));
      route_proxy = route_proxies_.back().get();
    }
    const UpstreamProxy* proxy =
        select_upstream_proxy(route_proxy, r.upstream_proxy && r.upstream_proxy->empty(),
                              r.destination.tls(), r.destination.host, r.destination.port);
    const TlsClientContext* tls = nullptr;
    if (r.destination.tls()) {
      auto key = std::make_pair(r.ca_file, !r.insecure_skip_verify);
      auto it = contexts.find(key);
      if (it == contexts.end()) {
        std::string error;
        auto ctx = TlsClientContext::create(r.ca_file, !r.insecure_skip_verify, &error);
        if (!ctx) throw std::runtime_error("route '" + r.name + "': " + error);
        it = contexts.emplace(key, ctx.get()).first;
        tls_contexts_.push_back(std::move(ctx));
      }
      tls = it->second;
    }
    // Connections through a proxy are pooled apart, per proxy (credentials included).
    std::string key = r.destination.origin() +
                      (tls ? "|" + std::to_string(reinterpret_cast<uintptr_t>(tls)) : "") +
                      (proxy ? "|via " + std::to_string(reinterpret_cast<uintptr_t>(proxy)) : "");
    auto it = endpoints.find(key);
    if (it == endpoints.end()) {
      auto ep = std::make_unique<Endpoint>();
      ep->host = r.destination.host;
      ep->port = r.destination.port;
      ep->tls = tls;
      ep->proxy = proxy;
      ep->key = key;
      ep->generation = generation_;
      it = endpoints.emplace(key, ep.get()).first;
      endpoints_.push_back(std::move(ep));
    }
    routes_.push_back({&r, it->second});
    route_counters_.push_back(metrics_.route(r.name));
    // The first route (in file order) to an origin itself serves forward-proxy requests to it.
    if (r.destination.path == "/")
      route_by_origin_.emplace(r.destination.origin(), routes_.size() - 1);
  }
  if (config.forward_proxy.enabled) setup_forward_proxy();
}

Forwarder::~Forwarder() = default;

const UpstreamProxy* Forwarder::select_upstream_proxy(const UpstreamProxy* route_proxy,
                                                      bool route_direct, bool tls,
                                                      const std::string& host,
                                                      uint16_t port) const {
  if (route_direct) return nullptr;
  if (route_proxy) return route_proxy;
  for (const auto& pattern : config_.server.no_proxy) {
    if (host_matches(pattern, host)) return nullptr;
  }
  if (server_proxy_) return server_proxy_.get();
  if (config_.server.upstream_proxy_from_env) {
    return (tls ? env_https_proxy_ : env_http_proxy_).for_host(host, port);
  }
  return nullptr;
}

awaitable<bool> Forwarder::serve(ClientConnection& client, const RequestHead& head,
                                 UpstreamPool& pool) {
  return serve_request(client, head, pool, nullptr);
}

awaitable<bool> Forwarder::serve_request(ClientConnection& client, const RequestHead& head,
                                         UpstreamPool& pool, const ForwardTarget* target) {
  Exchange ex(client, head, pool);
  start_exchange(ex);
  ex.client_close = stopping_ || head.minor_version == 0 ||
                    headers_have_token(head.headers, "Connection", "close");
  RouteMatch match;
  if (target) {
    route_forward(ex, *target);
    match.kind = ex.route ? RouteMatch::Kind::kRoute : RouteMatch::Kind::kNotFound;
  } else {
    match = route(ex);
  }

  FramingResult framing = request_framing(head);
  if (framing.error_status != 0) {
    ex.client_close = true;  // the body's extent is unknown: the connection is unusable
    ex.request_body = std::make_unique<BodyReader>(BodyFraming{}, std::string());
    co_return co_await respond_locally(ex, framing.error_status, framing.error + "\n");
  }
  ex.request_framing = framing.framing;
  ex.request_body = std::make_unique<BodyReader>(framing.framing, std::move(client.buffer));
  client.buffer.clear();
  ex.continue_pending =
      !ex.request_body->done() && headers_have_token(head.headers, "Expect", "100-continue");
  if (const uint64_t max_body = config_.server.max_request_body_bytes;
      max_body != 0 && framing.framing.kind == BodyFraming::Kind::kLength &&
      framing.framing.length > max_body) {
    // Refused before a byte of it is read or forwarded; the unread body makes the connection
    // unusable, so it closes after the answer.
    ex.client_close = true;
    ex.body_failed = true;
    ex.summary.error = "request body of " + std::to_string(framing.framing.length) +
                       " bytes exceeds server.max_request_body_bytes (" + std::to_string(max_body) +
                       ")";
    co_return co_await respond_locally(ex, 413, ex.summary.error + "\n");
  }

  switch (match.kind) {
    case RouteMatch::Kind::kRoute:
      co_return co_await forward(ex);
    case RouteMatch::Kind::kRedirect: {
      // (g++ 12 cannot compile a braced header list inside a co_await expression.)
      std::vector<Header> location{Header{"Location", match.location}};
      co_return co_await respond_locally(
          ex, 301, "Moved Permanently: " + redact_query(match.location) + "\n",
          std::move(location));
    }
    case RouteMatch::Kind::kMethodNotAllowed: {
      std::vector<Header> allow{Header{"Allow", match.allow}};
      co_return co_await respond_locally(ex, 405, "Method Not Allowed\n", std::move(allow));
    }
    case RouteMatch::Kind::kNotFound:
      break;
  }
  if (target) {
    co_return co_await respond_locally(ex, 503,
                                       "too many distinct forward-proxy destinations (" +
                                           std::to_string(kMaxForwardRoutes) + ")\n");
  }
  // The proxy's own answers mask query credentials always: the body is captured and stored.
  co_return co_await respond_locally(
      ex, 404, "No route found for " + head.method + " " + redact_query(head.target) + "\n");
}

void Forwarder::start_exchange(Exchange& ex) const {
  ex.in_flight.hold(&metrics_.exchanges_in_flight);
  ex.summary.timings.start = Clock::now();
  ex.info.id = new_uuid();
  ex.info.started = ex.summary.timings.start;
  ex.info.started_at = std::chrono::system_clock::now();
  ex.info.proxy_path = ex.head.target;
  ex.info.client_ip = ex.client.peer_ip();
}

RouteMatch Forwarder::route(Exchange& ex) const {
  const RequestHead& head = ex.head;
  RouteMatch match;
  const std::string& not_found = config_.server.not_found;
  bool not_found_prefix = !not_found.empty() && head.path().starts_with(not_found);
  if (!not_found_prefix) {
    const std::string* host = find_header(head.headers, "Host");
    match =
        router_.match(head.method, host ? *host : std::string_view{}, head.path(), head.query());
  }
  const RouteConfig* route_config = nullptr;
  ex.counters = no_route_counters_;
  if (match.kind == RouteMatch::Kind::kRoute) {
    ex.route_index = match.route_index;
    ex.route = &routes_[match.route_index];
    ex.counters = route_counters_[match.route_index];
    route_config = ex.route->config;
    ex.info.route = route_config->name;
    ex.upstream_target = upstream_target(router_.pattern(match.route_index),
                                         route_config->destination, head.path(), head.query());
    ex.info.destination = route_config->destination.origin() + ex.upstream_target;
  }
  begin_exchange(ex, route_config);
  return match;
}

void Forwarder::begin_exchange(Exchange& ex, const RouteConfig* route_config) const {
  const RequestHead& head = ex.head;
  ex.info.method = head.method;
  // `logging-proxy replay` marks its requests so the new capture links to the original.
  if (const std::string* replay_of = find_header(head.headers, "X-Replay-Of");
      replay_of && wire::is_exchange_id(*replay_of)) {
    ex.info.replay_of = *replay_of;
  }
  if (capture_ && config_.captures(route_config)) ex.observer = capture_->start(ex.info);
  log_start(ex);
}

void Forwarder::log_start(const Exchange& ex) const {
  if (!console_.enabled() || console_.json()) return;
  // Credentials in the query (?key=...) are masked; the writer thread adds the timestamp.
  std::string target_masked, destination_masked;
  // The target as the client named it: absolute for a forward-proxy request, even one read
  // from an intercepted connection.
  std::string_view target = ex.info.proxy_path;
  if (target.find('?') != std::string_view::npos) target = target_masked = redact_query(target);
  std::string_view destination = ex.info.destination;
  if (destination.empty()) {
    destination = "(no route)";
  } else if (destination.find('?') != std::string_view::npos) {
    destination = destination_masked = redact_query(destination);
  }
  console_.stamped_line(ex.info.started_at,
                        {" [", std::string_view(ex.info.id).substr(0, 8), "] ", ex.head.method, " ",
                         target, " -> ", destination, ex.observer ? " [log]" : ""});
}

void Forwarder::log_end(const Exchange& ex) const {
  if (!console_.enabled()) return;
  if (console_.json()) return log_record(ex);
  // Integers only (no printf): "200 1024 bytes 0.1 ms".
  char status[16], bytes[24], ms[32];
  auto end_of = [](char* b, size_t n, auto v) { return std::to_chars(b, b + n, v).ptr; };
  const std::string_view status_text(status,
                                     end_of(status, sizeof status, ex.summary.status) - status);
  const std::string_view bytes_text(
      bytes, end_of(bytes, sizeof bytes, ex.summary.response_body_bytes) - bytes);
  const auto tenths = static_cast<uint64_t>((std::chrono::duration_cast<std::chrono::microseconds>(
                                                 ex.summary.timings.end - ex.summary.timings.start)
                                                 .count() +
                                             50) /
                                            100);
  char* p = end_of(ms, sizeof ms - 2, tenths / 10);
  *p++ = '.';
  *p++ = static_cast<char>('0' + tenths % 10);
  const std::string_view ms_text(ms, p - ms);
  const bool complete = ex.summary.outcome == Outcome::kComplete;
  const bool with_error = !complete && !ex.summary.error.empty();
  console_.stamped_line(
      std::chrono::system_clock::now(),
      {" [", std::string_view(ex.info.id).substr(0, 8), "] ", status_text, " ", bytes_text,
       " bytes ", ms_text, " ms", complete ? "" : " ",
       complete ? std::string_view() : outcome_name(ex.summary.outcome), with_error ? ": " : "",
       with_error ? std::string_view(ex.summary.error) : std::string_view()});
}

// The same facts as the two text lines, as JSON members, credentials in the query masked.
void Forwarder::log_record(const Exchange& ex) const {
  const ExchangeSummary& s = ex.summary;
  std::string members;
  members.reserve(256);
  auto string_field = [&](std::string_view key, std::string_view value) {
    members += '"';
    members += key;
    members += "\":";
    append_json_string(&members, value);
    members += ',';
  };
  auto raw_field = [&](std::string_view key, std::string_view value) {
    members += '"';
    members += key;
    members += "\":";
    members += value;
    members += ',';
  };
  string_field("id", ex.info.id);
  string_field("method", ex.head.method);
  string_field("path", redact_query(ex.info.proxy_path));
  string_field("route", ex.info.route);
  string_field("destination", redact_query(ex.info.destination));
  raw_field("status", std::to_string(s.status));
  raw_field("request_bytes", std::to_string(s.request_body_bytes));
  raw_field("bytes", std::to_string(s.response_body_bytes));
  char ms[32];
  const double duration_ms =
      std::chrono::duration<double, std::milli>(s.timings.end - s.timings.start).count();
  std::snprintf(ms, sizeof ms, "%.3f", duration_ms);
  raw_field("duration_ms", ms);
  string_field("outcome", outcome_name(s.outcome));
  if (s.outcome != Outcome::kComplete && !s.error.empty()) string_field("error", s.error);
  string_field("client_ip", ex.info.client_ip);
  members += "\"captured\":";
  members += ex.observer ? "true" : "false";
  console_.json_record(std::chrono::system_clock::now(), members);
}

bool Forwarder::finish(Exchange& ex) {
  ex.summary.timings.end = Clock::now();
  if (ex.request_body) {
    ex.summary.request_body_bytes = ex.request_body->decoded_bytes();
    if (ex.request_body->done() && !ex.client_close) {
      // Bytes past the body came first; any the hang-up watch kept arrived after them.
      std::string rest = ex.request_body->take_leftover();
      rest += ex.client.buffer;
      ex.client.buffer = std::move(rest);
    } else {
      ex.client_close = true;
    }
  }
  log_end(ex);
  count(ex);
  if (ex.observer) ex.observer->on_end(ex.summary);
  ex.keep_alive = !ex.client_close;
  return ex.keep_alive;
}

void Forwarder::count(const Exchange& ex) const {
  const ExchangeSummary& s = ex.summary;
  const ExchangeTimings& t = s.timings;
  (ex.counters ? ex.counters : no_route_counters_)->count(ex.head.method, s.status);
  metrics_.outcomes[static_cast<size_t>(s.outcome)].fetch_add(1, std::memory_order_relaxed);
  metrics_.request_body_bytes.fetch_add(s.request_body_bytes, std::memory_order_relaxed);
  metrics_.response_body_bytes.fetch_add(s.response_body_bytes, std::memory_order_relaxed);
  metrics_.request_duration.observe(t.end - t.start);
  if (t.new_upstream_connection) metrics_.upstream_connect.observe(t.upstream_connect);
  if (t.upstream_headers != Clock::time_point{}) {
    metrics_.upstream_headers.observe(t.upstream_headers - t.start);
  }
  if (t.request_forwarded != Clock::time_point{}) {
    metrics_.proxy_overhead.observe(t.request_forwarded - t.start - t.upstream_connect);
  }
}

void Forwarder::client_aborted(Exchange& ex, const std::string& why) {
  ex.summary.outcome = Outcome::kClientAborted;
  ex.summary.error = why;
  ex.client_close = true;
}

bool Forwarder::client_gone(Exchange& ex, const std::string& why) {
  client_aborted(ex, why);
  return finish(ex);
}

awaitable<bool> Forwarder::upstream_failed(Exchange& ex, int status, const std::string& reason) {
  ex.summary.outcome = Outcome::kUpstreamError;
  ex.summary.error = reason;
  const std::string body = "[" + short_id(ex.info.id) +
                           (status == 504 ? "] upstream timed out: " : "] proxy request failed: ");
  co_return co_await respond_locally(ex, status, body + reason + "\n");
}

awaitable<void> Forwarder::drain_request_body(Exchange& ex) {
  BodyReader& request_body = *ex.request_body;
  if (request_body.done()) co_return;
  if (ex.continue_pending || ex.body_failed) {
    // The client awaits 100 Continue and will not send the body, or reading it already failed.
    ex.client_close = true;
    co_return;
  }
  auto sink = [&](std::string_view piece) {
    if (ex.observer) ex.observer->on_request_body(piece);
  };
  while (!request_body.done() && request_body.decoded_bytes() <= kMaxDrainBytes) {
    IoResult r = co_await read_body_once(request_body, ex.client,
                                         deadline_after(config_.server.idle_timeout), sink);
    if (!r.ok()) break;
  }
  if (!request_body.done()) ex.client_close = true;
}

awaitable<bool> Forwarder::respond_locally(Exchange& ex, int status, std::string body,
                                           std::vector<Header> extra_headers) {
  co_await drain_request_body(ex);
  if (ex.observer && !ex.request_head_reported) {
    ex.observer->on_request_head(ex.head);
    ex.request_head_reported = true;
  }
  ResponseHead response;
  response.status = status;
  response.reason = reason_phrase(status);
  response.headers.push_back({"Content-Type", "text/plain; charset=utf-8"});
  response.headers.push_back({"Content-Length", std::to_string(body.size())});
  for (auto& h : extra_headers) response.headers.push_back(std::move(h));
  if (ex.client_close || stopping_) {
    ex.client_close = true;
    response.headers.push_back({"Connection", "close"});
  }
  std::string out;
  append_response_head(&out, response);
  if (ex.head.method != "HEAD") out += body;
  if (ex.observer) {
    ex.observer->on_response_head(response);
    ex.observer->on_response_body(body, Clock::now());
  }
  ex.summary.status = status;
  ex.summary.response_body_bytes = body.size();
  IoResult w = co_await ex.client.write_all(out, deadline_after(config_.server.idle_timeout));
  if (!w.ok()) {
    ex.client_close = true;
    if (ex.summary.outcome == Outcome::kComplete) ex.summary.outcome = Outcome::kClientAborted;
  }
  co_return finish(ex);
}

}  // namespace lp
