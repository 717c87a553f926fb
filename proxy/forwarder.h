// The life of one request: route it, forward it upstream, stream the response back, and
// report every step to the capture observer. serve() is one coroutine read top to bottom;
// each step is a named member and each wait a co_await with its deadline. It runs on the
// event-loop thread that owns the client connection, with that thread's upstream pool;
// nothing here waits on logging (the observer only queues).
//
// The Forwarder itself is shared by every thread and immutable after construction, except
// the shutdown flag and the forward proxy's routes (made on first use, under a mutex).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/http_message.h"
#include "proxy/asio_base.h"
#include "proxy/body_stream.h"
#include "proxy/client_connection.h"
#include "proxy/console_log.h"
#include "proxy/exchange_observer.h"
#include "proxy/forward_ca.h"
#include "proxy/forward_policy.h"
#include "proxy/forward_target.h"
#include "proxy/proxy_metrics.h"
#include "proxy/router.h"
#include "proxy/upstream_pool.h"
#include "proxy/upstream_proxy.h"

namespace lp {

// What every Forwarder shares with the proxy around it, whatever configuration it serves.
struct ForwarderEnv {
  ConsoleLog& console;
  ProxyMetrics& metrics;
  const std::atomic<bool>& stopping;  // set at shutdown: responses carry "Connection: close"
};

class Forwarder {
 public:
  // Builds the router and one TLS context per trust setting. Throws RouteError for a bad
  // route pattern and std::runtime_error for an unusable TLS setting. `config`, `capture` and
  // what `env` refers to must outlive this.
  Forwarder(const Config& config, ExchangeObserverFactory* capture, const ForwarderEnv& env);
  ~Forwarder();

  // Serves the request whose head was just parsed from `client.buffer` (already removed
  // from it). Returns whether the connection may carry another request.
  awaitable<bool> serve(ClientConnection& client, const RequestHead& head, UpstreamPool& pool);

  // The forward proxy (forward_proxy.enabled; forwarder_forward.cc). A request is the proxy's
  // own when it is a CONNECT or has an absolute-form target.
  bool forward_proxy_enabled() const { return forward_policy_ != nullptr; }
  static bool is_proxy_request(const RequestHead& head);
  struct ProxyRequestResult {
    bool keep_alive = false;
    // Set when a CONNECT was intercepted: the connection now speaks TLS as this target, and
    // every request on it goes to serve_intercepted().
    std::optional<ForwardTarget> intercepted;
  };
  awaitable<ProxyRequestResult> serve_proxy_request(ClientConnection& client,
                                                    const RequestHead& head, UpstreamPool& pool);
  // A request read from an intercepted connection (origin-form), forwarded to `target`.
  awaitable<bool> serve_intercepted(ClientConnection& client, const RequestHead& head,
                                    const ForwardTarget& target, UpstreamPool& pool);

  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  // Unique per Forwarder: the upstream pools keep only connections of the current one.
  uint64_t generation() const { return generation_; }

 private:
  struct Exchange;
  struct Route {
    const RouteConfig* config;
    const Endpoint* endpoint;
  };
  // What a step left to do: go on, retry on a fresh connection, or the exchange is over
  // (its answer sent or abandoned; Exchange::keep_alive holds serve()'s result).
  enum class Step { kNext, kRetry, kDone };

  // Sets the exchange's route (ex.route, ex.info) and starts its capture; `target`: a
  // forward-proxy request, routed by its destination rather than the route patterns.
  awaitable<bool> serve_request(ClientConnection& client, const RequestHead& head,
                                UpstreamPool& pool, const ForwardTarget* target);
  // The exchange's id, clocks, in-flight gauge and client facts, at its start.
  void start_exchange(Exchange& ex) const;
  RouteMatch route(Exchange& ex) const;
  void route_forward(Exchange& ex, const ForwardTarget& target);
  void begin_exchange(Exchange& ex, const RouteConfig* route_config) const;
  // The route a forward-proxy destination is forwarded by: a configured route whose
  // destination is that origin, else one made for it (kept for this Forwarder's life, at most
  // kMaxForwardRoutes); nullptr past that bound.
  std::pair<const Route*, RouteRequestCounters*> forward_route(const ForwardTarget& target);
  // The upstream proxy a connection to host:port goes through (nullptr: direct): the route's
  // own (`route_proxy`, or none when `route_direct`), else direct for server.no_proxy hosts,
  // else server.upstream_proxy, else the environment's when server.upstream_proxy_from_env.
  const UpstreamProxy* select_upstream_proxy(const UpstreamProxy* route_proxy, bool route_direct,
                                             bool tls, const std::string& host,
                                             uint16_t port) const;
  // Builds the policy, the leaf cache (loading or creating the CA) and the default trust;
  // throws std::runtime_error naming the problem (startup or a refused reload).
  void setup_forward_proxy();
  awaitable<ProxyRequestResult> tunnel(ClientConnection& client, const RequestHead& head,
                                       const ForwardTarget& target, UpstreamPool& pool);
  awaitable<ProxyRequestResult> intercept(ClientConnection& client, const RequestHead& head,
                                          const ForwardTarget& target);
  awaitable<bool> refuse_proxy_request(ClientConnection& client, const RequestHead& head,
                                       int status, const std::string& reason,
                                       std::vector<Header> extra_headers = {});
  awaitable<bool> forward(Exchange& ex);
  awaitable<Step> exchange_heads(Exchange& ex);
  std::string upstream_request_head(Exchange& ex) const;
  awaitable<Step> open_upstream(Exchange& ex, int attempt);
  awaitable<Step> send_request(Exchange& ex, const std::string& head_bytes);
  awaitable<Step> send_request_body(Exchange& ex);
  awaitable<Step> refuse_request_body(Exchange& ex, int status, std::string error);
  awaitable<Step> await_response_head(Exchange& ex);
  awaitable<Step> relay_interim(Exchange& ex);
  awaitable<bool> relay_response(Exchange& ex);
  awaitable<bool> relay_response_body(Exchange& ex, BodyReader& body, const BodyEncoder& encoder,
                                      std::string out);
  awaitable<bool> respond_locally(Exchange& ex, int status, std::string body,
                                  std::vector<Header> extra_headers = {});
  awaitable<bool> upstream_failed(Exchange& ex, int status, const std::string& reason);
  awaitable<void> drain_request_body(Exchange& ex);
  void client_aborted(Exchange& ex, const std::string& why);  // outcome only
  bool client_gone(Exchange& ex, const std::string& why);     // outcome, then finish()
  bool finish(Exchange& ex);
  void count(const Exchange& ex) const;
  void log_start(const Exchange& ex) const;
  void log_end(const Exchange& ex) const;
  void log_record(const Exchange& ex) const;

  const Config& config_;
  ConsoleLog& console_;
  ExchangeObserverFactory* capture_;
  Router router_;
  std::vector<std::unique_ptr<TlsClientContext>> tls_contexts_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::vector<Route> routes_;  // parallel to config_.routes
  // Origin ("https://host[:port]") -> index in routes_ of the first route whose destination is
  // that origin with no path: the route a forward-proxy request to that origin uses.
  std::map<std::string, size_t> route_by_origin_;
  ProxyMetrics& metrics_;
  std::vector<RouteRequestCounters*> route_counters_;  // parallel to routes_
  RouteRequestCounters* no_route_counters_;
  HeadLimits limits_;
  const std::atomic<bool>& stopping_;
  const uint64_t generation_;

  // Upstream proxies (server-wide, per route, from the environment); endpoints point at them.
  std::unique_ptr<UpstreamProxy> server_proxy_;
  std::vector<std::unique_ptr<UpstreamProxy>> route_proxies_;
  EnvironmentProxy env_https_proxy_, env_http_proxy_;

  // The forward proxy, when enabled.
  struct ForwardRoute {
    RouteConfig config;
    Endpoint endpoint;
    Route route;
    RouteRequestCounters* counters;
  };
  static constexpr size_t kMaxForwardRoutes = 4096;
  std::unique_ptr<ForwardPolicy> forward_policy_;
  std::unique_ptr<LeafCertCache> leaves_;            // when something may be intercepted
  std::unique_ptr<TlsClientContext> forward_tls_;    // default trust, for forward destinations
  RouteRequestCounters* tunnel_counters_ = nullptr;  // blind tunnels: route "tunnel"
  std::mutex forward_mu_;
  std::map<std::string, std::unique_ptr<ForwardRoute>> forward_routes_;  // by origin
};

}  // namespace lp
