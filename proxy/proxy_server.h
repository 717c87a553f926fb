// The proxy's listener. Threading model (docs/decisions/001): one thread per client
// connection, which reads each request head and runs the whole exchange (upstream I/O
// included) itself, so a request never waits for a free worker and a long SSE stream only
// ever occupies its own thread. Concurrency is bounded by server.max_connections; beyond it a
// new connection gets an immediate 503.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_set>

#include "common/config.h"
#include "proxy/console_log.h"
#include "proxy/forwarder.h"

namespace lp {

class ProxyServer {
 public:
  ProxyServer(const Config& config, Forwarder& forwarder, ConsoleLog& console);
  ~ProxyServer();

  // Binds the listening socket; throws std::runtime_error naming the address and the cause.
  void bind();
  // "http://127.0.0.1:5601": the bound address (port resolved when configured as 0).
  std::string url() const { return url_; }
  // Accepts and serves until shutdown(); then drains (see shutdown) and returns.
  void run();
  // Stops accepting, lets in-flight exchanges finish for up to `grace`, then cuts the rest.
  // Thread-safe; returns immediately (run() does the draining).
  void shutdown();
  std::chrono::milliseconds grace = std::chrono::seconds(10);

 private:
  void serve_connection(int fd, std::string peer_ip);
  void reject(int fd, int status, const std::string& reason);

  const Config& config_;
  Forwarder& forwarder_;
  ConsoleLog& console_;
  HeadLimits limits_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: readable once shutdown() was called
  std::string url_;
  std::atomic<bool> stopping_{false};

  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::unordered_set<int> open_fds_;  // client connections, for the forced close at the end
};

}  // namespace lp
