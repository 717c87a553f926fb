// One connection to an upstream origin, plain TCP or TLS (asio::ssl::stream over the same
// socket), with its deadline watchdog. It belongs to the io_context of the thread that opened
// it and is used only there; the per-thread UpstreamPool keeps it between exchanges.
#pragma once

#include <boost/asio/ssl/stream.hpp>
#include <memory>
#include <optional>
#include <string>

#include "proxy/asio_base.h"
#include "proxy/io_result.h"
#include "proxy/tls_context.h"
#include "proxy/upstream_proxy.h"
#include "proxy/watchdog.h"

namespace lp {

// Where a route's requests go: one per distinct (origin, trust setting).
struct Endpoint {
  std::string host;
  uint16_t port = 0;
  const TlsClientContext* tls = nullptr;  // nullptr: plain HTTP
  std::string key;                        // pool key: origin plus trust setting (and proxy)
  // Set: connections go through this proxy (owned with the endpoint, outliving it); the
  // pool key must then name it too, or a pooled tunnel could serve another proxy's endpoint.
  const UpstreamProxy* proxy = nullptr;
  uint64_t generation = 0;  // the Forwarder (configuration) that owns this endpoint
};

class UpstreamConnection {
 public:
  UpstreamConnection(const asio::any_io_executor& executor, const Endpoint& endpoint);
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Resolves, connects (each address in turn) with TCP_NODELAY, and runs the TLS handshake
  // with SNI and host verification, all before `deadline`. False with *error naming the step.
  // Through an endpoint's proxy: the connect is to the proxy, then its handshake opens the
  // tunnel the TLS handshake runs in; errors of those steps name the proxy.
  awaitable<bool> open(Deadline deadline, std::string* error);
  // Reads once: plain sockets into the thread buffer, TLS into this connection's own buffer
  // (a TLS read may complete later than the bytes arrive, so it cannot borrow the thread's).
  awaitable<ReadResult> read_some(size_t max, Deadline deadline);
  awaitable<IoResult> write_all(std::string_view data, Deadline deadline);
  // Ends whatever waits on this connection (the client hung up).
  void cancel();
  // An idle keep-alive connection has nothing to read: readable means the server closed it
  // or sent something unsolicited (for TLS: a close_notify); either way it cannot be reused.
  bool still_open();

  const Endpoint& endpoint() const { return endpoint_; }
  Clock::time_point idle_since;
  bool reused = false;  // taken from the pool rather than freshly opened

 private:
  awaitable<bool> connect(const std::string& host, uint16_t port, Deadline deadline,
                          std::string* error);
  awaitable<bool> tunnel(Deadline deadline, std::string* error);
  awaitable<bool> handshake(Deadline deadline, std::string* error);

  const Endpoint& endpoint_;
  tcp::socket socket_;
  std::optional<tcp::resolver> resolver_;  // while resolving
  std::optional<asio::ssl::stream<tcp::socket&>> tls_;
  std::unique_ptr<char[]> tls_buffer_;
  Watchdog watchdog_;
  // The last call was write_all(): the upstream is answering it, so the next plain read
  // waits before it reads (the response cannot have arrived in the same instant).
  bool wrote_last_ = false;
};

}  // namespace lp
