// Byte streams over connected sockets, plain TCP or TLS, and the waits the forwarder needs:
// every blocking step has a deadline, and a read from upstream can also watch the client's
// socket so that a client hanging up is noticed at once, not at the next upstream byte.
// Sockets are non-blocking; waiting is poll(2).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

namespace lp {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
inline Deadline no_deadline() {
  return Deadline::max();
}
// now + d, or no deadline when d is zero (a disabled timeout).
Deadline deadline_after(std::chrono::milliseconds d);

class Stream {
 public:
  virtual ~Stream() = default;
  int fd() const { return fd_; }
  // Non-blocking. Returns bytes moved (> 0), 0 when the peer closed (reads only),
  // kWouldBlock, or kFailed with error() set.
  static constexpr ssize_t kWouldBlock = -1;
  static constexpr ssize_t kFailed = -2;
  virtual ssize_t read_some(char* buf, size_t n) = 0;
  virtual ssize_t write_some(const char* buf, size_t n) = 0;
  // Bytes already received and buffered inside the stream (TLS records): readable now.
  virtual bool pending() const { return false; }
  // poll(2) events to wait for after a kWouldBlock (TLS may need to write to read).
  virtual short read_wait_events() const;
  virtual short write_wait_events() const;
  const std::string& error() const { return error_; }

 protected:
  explicit Stream(int fd) : fd_(fd) {}
  int fd_;
  std::string error_;
};

// Owns the fd and closes it.
class PlainStream : public Stream {
 public:
  explicit PlainStream(int fd) : Stream(fd) {}
  ~PlainStream() override;
  ssize_t read_some(char* buf, size_t n) override;
  ssize_t write_some(const char* buf, size_t n) override;
};

struct IoResult {
  enum class Status { kOk, kEof, kTimeout, kError, kWatchedPeerGone };
  Status status = Status::kOk;
  size_t bytes = 0;
  std::string error;
  bool ok() const { return status == Status::kOk; }
};

// Reads at least one byte unless the deadline passes, the peer closes or, when `watch_fd`
// is not -1, that socket's peer hangs up (POLLRDHUP: the client went away).
IoResult read_some(Stream& s, char* buf, size_t n, Deadline deadline, int watch_fd = -1);
// Writes everything unless the deadline passes or the peer fails.
IoResult write_all(Stream& s, const char* data, size_t n, Deadline deadline);
// Waits until `fd` is readable (or hung up), the deadline, or `wake_fd` becomes readable.
// Returns true when `fd` is ready.
bool wait_readable(int fd, Deadline deadline, int wake_fd = -1);
// Whether the peer of a connected socket has closed its side (a non-blocking peek).
bool peer_closed(int fd);

// Opens a TCP connection with TCP_NODELAY set, trying each resolved address in turn.
// Returns the connected non-blocking fd, or -1 with *error naming the failure.
int connect_tcp(const std::string& host, uint16_t port, Deadline deadline, std::string* error);
// Makes fd non-blocking and sets TCP_NODELAY (Nagle + delayed ACK add 40 ms per response).
void tune_socket(int fd);

}  // namespace lp
