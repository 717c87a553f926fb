#include "proxy/async_io.h"

#include <memory>

namespace lp {

std::span<char> thread_read_buffer() {
  // 64 KiB: BodyReader's read size, so one read moves as much as the blocking path did.
  static thread_local std::unique_ptr<char[]> buf(new char[64 * 1024]);
  return {buf.get(), 64 * 1024};
}

std::string error_text(const error_code& ec) {
  if (ec == asio::error::eof) return "connection closed";
  return ec.message();
}

IoResult io_result(const error_code& ec, bool timed_out, size_t bytes) {
  IoResult r;
  r.bytes = bytes;
  if (timed_out) {
    r.status = IoResult::Status::kTimeout;
  } else if (ec == asio::error::eof) {
    r.status = IoResult::Status::kEof;
  } else if (ec) {
    r.status = IoResult::Status::kError;
    r.error = error_text(ec);
  }
  return r;
}

awaitable<ReadResult> read_plain(tcp::socket& socket, Watchdog& watchdog, size_t max,
                                 Deadline deadline, bool wait_first) {
  const std::span<char> buf = thread_read_buffer();
  if (max > buf.size()) max = buf.size();
  while (true) {
    if (!wait_first) {
      error_code ec;
      const size_t n = socket.read_some(asio::buffer(buf.data(), max), ec);
      if (ec != asio::error::would_block) {
        co_return ReadResult{io_result(ec, false, n), std::string_view(buf.data(), ec ? 0 : n)};
      }
    }
    wait_first = false;
    watchdog.arm(deadline);
    auto [wait_ec] = co_await socket.async_wait(tcp::socket::wait_read, use_result);
    watchdog.disarm();
    if (wait_ec || watchdog.fired()) co_return ReadResult{io_result(wait_ec, watchdog.fired()), {}};
  }
}

awaitable<IoResult> write_plain(tcp::socket& socket, Watchdog& watchdog, std::string_view data,
                                Deadline deadline) {
  error_code ec;
  size_t done = socket.write_some(asio::buffer(data.data(), data.size()), ec);
  if (ec == asio::error::would_block) {
    done = 0;
  } else if (ec || done == data.size()) {
    co_return io_result(ec, false, ec ? 0 : done);
  }
  IoResult rest = co_await write_all(socket, watchdog, data.substr(done), deadline);
  rest.bytes += done;
  co_return rest;
}

}  // namespace lp
