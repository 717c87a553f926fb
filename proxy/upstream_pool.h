// Keep-alive connections to upstream origins, reused across exchanges and threads.
// A connection is checked out for one exchange and handed back only if that exchange left it
// clean (response fully read, no "Connection: close"). Idle connections are kept LIFO (the
// warmest first), at most max_idle per endpoint and for at most max_idle_age, and are checked
// for a peer close before reuse.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/socket.h"
#include "proxy/tls_context.h"

namespace lp {

// Where a route's requests go: one per distinct (origin, trust setting).
struct Endpoint {
  std::string host;
  uint16_t port = 0;
  const TlsClientContext* tls = nullptr;  // nullptr: plain HTTP
  std::string key;                        // pool key: origin plus trust setting
};

struct UpstreamConnection {
  std::unique_ptr<Stream> stream;
  const Endpoint* endpoint = nullptr;
  Clock::time_point idle_since;
  bool reused = false;  // taken from the pool rather than freshly connected
};

class UpstreamPool {
 public:
  struct Options {
    size_t max_idle_per_endpoint = 64;
    std::chrono::milliseconds max_idle_age = std::chrono::seconds(30);
  };
  UpstreamPool() : UpstreamPool(Options{}) {}
  explicit UpstreamPool(Options options) : options_(options) {}

  // An idle connection that is still open, or a new one (connect + TLS handshake).
  // Returns nullptr with *error naming the failure.
  std::unique_ptr<UpstreamConnection> acquire(const Endpoint& endpoint, Deadline connect_deadline,
                                              std::string* error);
  // Returns a connection that is clean for another request.
  void release(std::unique_ptr<UpstreamConnection> conn);
  // Closes every idle connection (shutdown).
  void clear();

 private:
  std::unique_ptr<UpstreamConnection> take_idle(const Endpoint& endpoint);

  const Options options_;
  std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<UpstreamConnection>>> idle_;
};

}  // namespace lp
