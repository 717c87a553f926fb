// The vocabulary every I/O step of the proxy reports in, blocking (socket.h, the replay
// command) or asynchronous (the data plane): a deadline per wait and a result value.
// Errors on the data plane are values of IoResult, never exceptions.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace lp {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
inline Deadline no_deadline() {
  return Deadline::max();
}
// now + d, or no deadline when d is zero (a disabled timeout).
inline Deadline deadline_after(std::chrono::milliseconds d) {
  return d.count() <= 0 ? no_deadline() : Clock::now() + d;
}

struct IoResult {
  enum class Status { kOk, kEof, kTimeout, kError, kWatchedPeerGone };
  Status status = Status::kOk;
  size_t bytes = 0;
  std::string error;
  bool ok() const { return status == Status::kOk; }
};

// A read's outcome and the bytes it got: a view into the reader's buffer, valid until the
// reader's next read (for the data plane's thread buffer: until its next co_await).
struct ReadResult {
  IoResult io;
  std::string_view data;
};

}  // namespace lp
