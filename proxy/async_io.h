// The two waits every data-plane socket needs, each under the socket's Watchdog deadline:
// one read (wait for readability, then read what is there into the thread buffer) and
// writing a whole buffer. Results are IoResult values; a wait cut by the watchdog reports
// kTimeout, one cancelled by someone else (the client hang-up watch) kError with
// "operation aborted" — callers that cancel know why they did.
#pragma once

#include <boost/asio/write.hpp>
#include <string_view>

#include "proxy/asio_base.h"
#include "proxy/io_result.h"
#include "proxy/watchdog.h"

namespace lp {

// Maps a completed operation to IoResult; `timed_out` wins over the error it caused.
IoResult io_result(const error_code& ec, bool timed_out, size_t bytes = 0);

// Reads at most `max` bytes once from a plain socket in non-blocking mode. The buffer is
// the thread's (asio_base.h): nothing is held while the socket is silent.
awaitable<ReadResult> read_plain(tcp::socket& socket, Watchdog& watchdog, size_t max,
                                 Deadline deadline);

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
