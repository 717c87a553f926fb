// The two waits every data-plane socket needs, each under the socket's Watchdog deadline:
// one read (on a plain socket, what is there at once, or after a wait for readability, into
// the thread buffer) and writing a whole buffer (on a plain socket, a send first; waiting only
// for what remains). Results are IoResult values; a wait cut by the watchdog reports kTimeout,
// one cancelled by someone else (the client hang-up watch) kError with "operation aborted" —
// callers that cancel know why they did.
#pragma once

#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <string_view>

#include "proxy/asio_base.h"
#include "proxy/io_result.h"
#include "proxy/watchdog.h"

namespace lp {

// Maps a completed operation to IoResult; `timed_out` wins over the error it caused.
IoResult io_result(const error_code& ec, bool timed_out, size_t bytes = 0);

// Reads at most `max` bytes once from a plain socket in non-blocking mode. The buffer is
// the thread's (asio_base.h): nothing is held while the socket is silent. `wait_first`: the
// peer is answering what was just written to it, so a read now would almost surely find
// nothing; the read waits for readability first and saves that failed read (waiting is
// always correct: data already there makes the wait end at once).
awaitable<ReadResult> read_plain(tcp::socket& socket, Watchdog& watchdog, size_t max,
                                 Deadline deadline, bool wait_first = false);

// One TLS record's worth of plaintext: the most a TLS read returns.
inline constexpr size_t kTlsReadSize = 16 * 1024;

// Reads at most `max` decrypted bytes once into `buffer` (made on first use, kTlsReadSize
// bytes, owned by the connection: a TLS read may complete later than its bytes arrived, so it
// cannot borrow the thread buffer). A peer that ends without close_notify has ended its side:
// reported as kEof, as for plain sockets.
template <typename TlsStream>
awaitable<ReadResult> read_tls(TlsStream& stream, Watchdog& watchdog,
                               std::unique_ptr<char[]>& buffer, size_t max, Deadline deadline) {
  if (!buffer) buffer = std::make_unique<char[]>(kTlsReadSize);
  if (max > kTlsReadSize) max = kTlsReadSize;
  watchdog.arm(deadline);
  auto [ec, n] = co_await stream.async_read_some(asio::buffer(buffer.get(), max), use_result);
  watchdog.disarm();
  if (ec == asio::ssl::error::stream_truncated) ec = asio::error::eof;
  co_return ReadResult{io_result(ec, watchdog.fired(), n),
                       std::string_view(buffer.get(), ec ? 0 : n)};
}

// Writes all of `data` to a plain socket: one send first, and only what the socket buffer did
// not take is written asynchronously. `socket` must be in non-blocking mode (non_blocking(true),
// as every data-plane socket is set when accepted or connected): otherwise asio's send waits
// for room and blocks the loop. A request or response that fits
// (the common case) then costs no suspension and no trip through the scheduler, which would
// add a non-blocking epoll_wait between the posted completion and the coroutine's resumption.
awaitable<IoResult> write_plain(tcp::socket& socket, Watchdog& watchdog, std::string_view data,
                                Deadline deadline);

// Writes all of `data` to any stream (TLS): asynchronously, under the deadline.
template <typename AsyncWriteStream>
awaitable<IoResult> write_all(AsyncWriteStream& stream, Watchdog& watchdog, std::string_view data,
                              Deadline deadline) {
  watchdog.arm(deadline);
  auto [ec, n] =
      co_await asio::async_write(stream, asio::buffer(data.data(), data.size()), use_result);
  watchdog.disarm();
  co_return io_result(ec, watchdog.fired(), n);
}

}  // namespace lp
