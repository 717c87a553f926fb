// The proxy's listener and its event loops (docs/decisions/005). A fixed set of threads
// (server.threads; 0 = one per core), each running its own io_context; every client
// connection and the upstream connections it uses live on one loop for their whole life, so
// an open stream costs memory, not a thread. One acceptor, on the first loop, hands accepted
// sockets to the loops in turn. Beyond server.max_connections a new connection gets an
// immediate 503.
//
// run() is called once, from the main thread; shutdown() from any thread (the signal thread).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "proxy/console_log.h"
#include "proxy/event_loop.h"
#include "proxy/generation.h"

namespace lp {

class ProxyServer {
 public:
  // Listens and runs loops as `listener` says (host, port, threads, max_connections: settings
  // a reload cannot change). `listener` and `console` must outlive this.
  ProxyServer(const ServerConfig& listener, ConsoleLog& console);
  ~ProxyServer();

  // Binds the listening socket; throws std::runtime_error naming the address and the cause.
  void bind();
  // "http://127.0.0.1:5601": the bound address (port resolved when configured as 0).
  std::string url() const { return url_; }
  // The configuration new requests are served with: before run(), and again at any time from
  // any thread (a reload); requests already in flight finish on theirs.
  void use(std::shared_ptr<const Generation> generation);
  std::shared_ptr<const Generation> current() const;
  // Set at shutdown; every Forwarder watches it (ForwarderEnv::stopping).
  const std::atomic<bool>& stopping_flag() const { return stopping_; }

  // Starts the loops, accepts and serves until shutdown(); then drains (see shutdown),
  // stops the loops and returns.
  void run();
  // Stops accepting and closes connections waiting for a request at once; in-flight exchanges
  // get up to `grace` to finish (their responses say "Connection: close"), then the rest are
  // cut. Thread-safe; returns immediately (run() does the draining).
  void shutdown();
  std::chrono::milliseconds grace = std::chrono::seconds(10);

  size_t thread_count() const { return loops_.size(); }
  bool stopping() const { return stopping_.load(); }
  // For metrics, from any thread.
  size_t open_connections() const { return connections_.open(); }
  int64_t idle_upstream_connections() const {
    int64_t n = 0;
    for (const auto& loop : loops_) n += loop->pool.idle_count();
    return n;
  }

 private:
  awaitable<void> accept_loop();
  void on_accepted(EventLoop& loop, tcp::socket socket);
  void post_to_loops(void (EventLoop::*what)());
  void log_escaped(const std::exception_ptr& e);

  const ServerConfig& listener_;
  ConsoleLog& console_;
  mutable std::mutex current_mu_;
  std::shared_ptr<const Generation> current_;
  bool running_ = false;         // under current_mu_
  ConnectionCount connections_;  // before loops_: sessions report to it as they end
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::optional<tcp::acceptor> acceptor_;  // on loops_[0]
  size_t next_loop_ = 0;
  std::string url_;
  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
};

}  // namespace lp
