// A connected data-plane socket as both connections read and write it: plain, or TLS over
// the same socket once start_tls() has been called. One read (into the thread buffer when
// plain, into this stream's own buffer under TLS) and one whole write, each under the
// connection's Watchdog deadline (async_io.h).
//
// Owned by its connection (ClientConnection, UpstreamConnection), whose `socket` and
// `watchdog` must outlive it; used only on the thread of the io_context the socket belongs to.
#pragma once

#include <boost/asio/ssl/stream.hpp>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include "proxy/asio_base.h"
#include "proxy/io_result.h"
#include "proxy/watchdog.h"

namespace lp {

using TlsStream = asio::ssl::stream<tcp::socket&>;

class SocketStream {
 public:
  SocketStream(tcp::socket& socket, Watchdog& watchdog) : socket_(socket), watchdog_(watchdog) {}
  SocketStream(const SocketStream&) = delete;
  SocketStream& operator=(const SocketStream&) = delete;

  // From now on reads and writes are decrypted and encrypted. `handle` is the
  // asio::ssl::context& to make the session from, or an SSL* this stream then owns; the
  // handshake is the caller's, on the stream returned.
  template <typename Handle>
  TlsStream& start_tls(Handle&& handle) {
    tls_.emplace(socket_, std::forward<Handle>(handle));
    return *tls_;
  }
  // The TLS layer, or nullptr while plain.
  TlsStream* tls() { return tls_ ? &*tls_ : nullptr; }
  const TlsStream* tls() const { return tls_ ? &*tls_ : nullptr; }

  // Reads at most `max` bytes once; the bytes are valid until the caller's next co_await
  // (ReadResult). A TLS peer that ends without close_notify has ended its side: kEof. A plain
  // read right after a write waits for readability first (the peer is answering it).
  awaitable<ReadResult> read_some(size_t max, Deadline deadline);
  awaitable<IoResult> write_all(std::string_view data, Deadline deadline);

 private:
  tcp::socket& socket_;
  Watchdog& watchdog_;
  std::optional<TlsStream> tls_;
  std::unique_ptr<char[]> tls_buffer_;  // made on the first TLS read
  // The last call was write_all(): the next plain read waits before it reads, which saves a
  // read that would almost surely fail (the peer cannot have answered in the same instant).
  bool wrote_last_ = false;
};

}  // namespace lp
