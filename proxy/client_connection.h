// A client's connection as the data plane sees it: the socket with its deadline watchdog,
// the bytes received but not yet consumed, and the hang-up watch the forwarder keeps while
// it waits for upstream bytes.
//
// Owned through a shared_ptr by its session coroutine (client_session.h); the hang-up watch's
// handler holds a reference so it can never outlive the socket it peeks at. Every member is
// used from the thread of the io_context the socket belongs to, except cut(), which the
// listener posts to that thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "proxy/asio_base.h"
#include "proxy/io_result.h"
#include "proxy/socket_stream.h"
#include "proxy/watchdog.h"

namespace lp {

class ClientConnection : public std::enable_shared_from_this<ClientConnection> {
 public:
  // `socket` is connected; it is made non-blocking with TCP_NODELAY.
  ClientConnection(tcp::socket socket, std::string peer_ip);
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  const std::string& peer_ip() const { return peer_ip_; }
  tcp::socket& socket() { return socket_; }

  // One read, one whole write (SocketStream): decrypted and encrypted after start_tls().
  awaitable<ReadResult> read_some(size_t max, Deadline deadline) {
    return stream_.read_some(max, deadline);
  }
  awaitable<IoResult> write_all(std::string_view data, Deadline deadline) {
    return stream_.write_all(data, deadline);
  }

  // The forward proxy's interception, after its "200 Connection Established": a TLS handshake
  // as the server, with `ctx` (which must outlive this connection); from then on reads and
  // writes are decrypted and encrypted. `buffer` must be empty (bytes of the ClientHello that
  // arrived with the CONNECT would otherwise be lost: the caller refuses those).
  awaitable<IoResult> start_tls(SSL_CTX* ctx, Deadline deadline);
  bool tls() const { return stream_.tls() != nullptr; }
  // The server name the client's ClientHello asked for (SNI); empty without TLS or SNI.
  std::string tls_server_name() const;

  // While the forwarder waits on the upstream, a client that hangs up must be noticed at once:
  // on_gone runs (it cancels the upstream wait) and hung_up() turns true. Bytes the client
  // sends meanwhile (its next, pipelined request) are kept in `buffer` when `absorb` is set
  // and there is room; otherwise the watch ends quietly rather than spin on a readable socket.
  // Over TLS bytes cannot be taken out from under the TLS layer: the first readable byte (a
  // record, perhaps close_notify) ends the watch, and only a connection closed without it is
  // noticed at once.
  void watch_hangup(std::function<void()> on_gone, bool absorb);
  void stop_watch();
  bool hung_up() const { return hung_up_; }

  // Shutdown's forced end: both directions shut, so every pending wait fails at once.
  void cut();

  std::string buffer;  // received bytes not yet consumed (the next request, pipelined)

 private:
  void await_watch_event();
  void on_watch_event(uint64_t generation, const error_code& ec);

  tcp::socket socket_;
  Watchdog watchdog_;
  SocketStream stream_;  // over socket_, under watchdog_
  std::string peer_ip_;
  std::function<void()> on_gone_;
  uint64_t watch_generation_ = 0;
  bool watching_ = false;
  bool absorb_ = false;
  bool hung_up_ = false;
};

}  // namespace lp
