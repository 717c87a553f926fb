// One connection to an upstream origin, plain TCP or TLS (asio::ssl::stream over the same
// socket), with its deadline watchdog. It belongs to the io_context of the thread that opened
// it and is used only there; the per-thread UpstreamPool keeps it between exchanges.
#pragma once

#include <optional>
#include <string>

#include "proxy/asio_base.h"
#include "proxy/io_result.h"
#include "proxy/socket_stream.h"
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
  // One read, one whole write (SocketStream): through TLS when the endpoint has it.
  awaitable<ReadResult> read_some(size_t max, Deadline deadline) {
    return stream_.read_some(max, deadline);
  }
  awaitable<IoResult> write_all(std::string_view data, Deadline deadline) {
    return stream_.write_all(data, deadline);
  }
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
  Watchdog watchdog_;
  SocketStream stream_;  // over socket_, under watchdog_; TLS after handshake()
};

}  // namespace lp
