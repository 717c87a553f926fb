// The life of one request: route it, forward it upstream, stream the response back, and
// report every step to the capture observer. Runs entirely on the client connection's own
// thread with blocking-with-deadline I/O; nothing here waits on logging.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/http_message.h"
#include "proxy/console_log.h"
#include "proxy/exchange_observer.h"
#include "proxy/router.h"
#include "proxy/upstream_pool.h"

namespace lp {

// A client connection as the forwarder sees it.
struct ClientConnection {
  explicit ClientConnection(int fd) : stream(fd) {}
  PlainStream stream;
  std::string buffer;  // received bytes not yet consumed (the next request, pipelined)
  std::string peer_ip;
};

class Forwarder {
 public:
  // Builds the router and one TLS context per trust setting. Throws RouteError for a bad
  // route pattern and std::runtime_error for an unusable TLS setting.
  Forwarder(const Config& config, ConsoleLog& console, ExchangeObserverFactory* capture);
  ~Forwarder();

  // Serves the request whose head was just parsed from `client.buffer` (already removed
  // from it). Returns whether the connection may carry another request.
  bool serve(ClientConnection& client, const RequestHead& head);

  // From now on responses carry "Connection: close" (graceful shutdown).
  void begin_shutdown() { stopping_ = true; }
  UpstreamPool& pool() { return pool_; }

 private:
  struct Exchange;
  struct Route {
    const RouteConfig* config;
    const Endpoint* endpoint;
  };

  bool forward(Exchange& ex);
  bool respond_locally(Exchange& ex, int status, std::string body,
                       std::vector<Header> extra_headers = {});
  bool finish(Exchange& ex);
  void log_start(const Exchange& ex) const;

  const Config& config_;
  ConsoleLog& console_;
  ExchangeObserverFactory* capture_;
  Router router_;
  std::vector<std::unique_ptr<TlsClientContext>> tls_contexts_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::vector<Route> routes_;  // parallel to config_.routes
  UpstreamPool pool_;
  HeadLimits limits_;
  std::atomic<bool> stopping_{false};
};

}  // namespace lp
