// Keep-alive connections to upstream origins, reused across exchanges of one thread.
// Each event-loop thread has its own pool: a connection (and its TLS state) belongs to the
// io_context that opened it, so sharing would mean handing sockets between threads for a
// small gain in reuse. Not thread-safe, by design: only its thread touches it.
//
// A connection is checked out for one exchange and handed back only if that exchange left it
// clean (response fully read, no "Connection: close"). Idle connections are kept LIFO (the
// warmest first), at most max_idle per endpoint and for at most max_idle_age, and are checked
// for a peer close before reuse.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/upstream_connection.h"

namespace lp {

class UpstreamPool {
 public:
  struct Options {
    size_t max_idle_per_endpoint = 64;
    std::chrono::milliseconds max_idle_age = std::chrono::seconds(30);
  };
  UpstreamPool() : UpstreamPool(Options{}) {}
  explicit UpstreamPool(Options options) : options_(options) {}

  // An idle connection to `endpoint` that is still open (marked reused), or nullptr.
  std::unique_ptr<UpstreamConnection> take_idle(const Endpoint& endpoint);
  // Returns a connection that is clean for another request.
  void release(std::unique_ptr<UpstreamConnection> conn);
  // Closes every idle connection (shutdown).
  void clear() {
    idle_.clear();
    publish(0);
  }
  // Connections of Forwarder generation `g` are kept from now on; idle ones of another go
  // (their Endpoint belongs to a configuration that is going away), and so do any released
  // later by exchanges still running on it.
  void set_generation(uint64_t g) {
    if (g != generation_) clear();
    generation_ = g;
  }
  // Idle connections held now; read from any thread (metrics), written only by the pool's.
  int64_t idle_count() const { return idle_count_.load(std::memory_order_relaxed); }

 private:
  void publish(int64_t n) { idle_count_.store(n, std::memory_order_relaxed); }
  const Options options_;
  std::atomic<int64_t> idle_count_{0};
  uint64_t generation_ = 0;
  std::unordered_map<std::string, std::vector<std::unique_ptr<UpstreamConnection>>> idle_;
};

}  // namespace lp
