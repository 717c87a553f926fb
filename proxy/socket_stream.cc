#include "proxy/socket_stream.h"

#include "proxy/async_io.h"

namespace lp {

awaitable<ReadResult> SocketStream::read_some(size_t max, Deadline deadline) {
  const bool wait_first = std::exchange(wrote_last_, false);  // TLS reads ignore it
  if (!tls_) return read_plain(socket_, watchdog_, max, deadline, wait_first);
  return read_tls(*tls_, watchdog_, tls_buffer_, max, deadline);
}

awaitable<IoResult> SocketStream::write_all(std::string_view data, Deadline deadline) {
  wrote_last_ = true;
  if (tls_) return lp::write_all(*tls_, watchdog_, data, deadline);
  return write_plain(socket_, watchdog_, data, deadline);
}

}  // namespace lp
