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
  void clear() { idle_.clear(); }

 private:
  const Options options_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<UpstreamConnection>>> idle_;
};

}  // namespace lp
