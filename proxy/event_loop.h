// One event-loop thread of the proxy: its io_context, the upstream connections it keeps
// alive, and the client sessions it serves. Everything in an EventLoop is touched only from
// its own thread; other threads reach it by posting to `io`.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "proxy/asio_base.h"
#include "proxy/client_connection.h"
#include "proxy/upstream_pool.h"

namespace lp {

class Generation;

// A client connection as its loop knows it, for shutdown.
struct Session {
  ClientConnection* conn = nullptr;
  bool awaiting_request = false;  // between exchanges: may be closed at once
};

// Counts client connections across all loops; shutdown waits for it to reach zero.
class ConnectionCount {
 public:
  bool try_open(size_t max) {
    size_t n = open_.load();
    do {
      if (n >= max) return false;
    } while (!open_.compare_exchange_weak(n, n + 1));
    return true;
  }
  size_t open() const { return open_.load(std::memory_order_relaxed); }
  void closed() {
    if (open_.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
  }
  // True when none is open (at once, or within `timeout`).
  bool wait_none(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return open_.load() == 0; });
  }

 private:
  std::atomic<size_t> open_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

class EventLoop {
 public:
  // A hint of 1: this io_context is run by one thread, so asio may skip its internal locking.
  EventLoop() : io(1) {}
  asio::io_context io;
  UpstreamPool pool;  // declared after io: its sockets go before the io_context does
  // The configuration new requests on this loop are served with (switched by a reload).
  std::shared_ptr<const Generation> generation;
  std::unordered_set<Session*> sessions;
  std::thread thread;

  // The pool lets go of the old generation's connections first: they refer to its endpoints,
  // and this loop's reference may be the last one keeping it alive.
  void use(std::shared_ptr<const Generation> g, uint64_t forwarder_generation) {
    pool.set_generation(forwarder_generation);
    generation = std::move(g);
  }

  // Shutdown, on this loop's thread: connections waiting for a request close now...
  void close_idle_sessions() {
    for (Session* s : sessions) {
      if (s->awaiting_request) {
        error_code ignored;
        s->conn->socket().cancel(ignored);
      }
    }
    pool.clear();
  }
  // ... and when the grace period is over, every other one is cut.
  void cut_sessions() {
    for (Session* s : sessions) s->conn->cut();
  }
};

}  // namespace lp
