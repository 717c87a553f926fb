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
  // Starts the loops, accepts and serves until shutdown(); then drains (see shutdown),
  // stops the loops and returns.
  void run();
  // Stops accepting and closes connections waiting for a request at once; in-flight exchanges
  // get up to `grace` to finish (their responses say "Connection: close"), then the rest are
  // cut. Thread-safe; returns immediately (run() does the draining).
  void shutdown();
  std::chrono::milliseconds grace = std::chrono::seconds(10);

  size_t thread_count() const { return loops_.size(); }

 private:
  awaitable<void> accept_loop();
  void on_accepted(EventLoop& loop, tcp::socket socket);
  void post_to_loops(void (EventLoop::*what)());
  void log_escaped(const std::exception_ptr& e);

  const Config& config_;
  Forwarder& forwarder_;
  ConsoleLog& console_;
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
