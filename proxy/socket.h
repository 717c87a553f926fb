// Blocking byte streams over connected sockets, for the paths off the data plane (the
// `replay` command, unit tests of BodyReader): every blocking step has a deadline, and a read
// can also watch another socket for a hang-up. Sockets are non-blocking; waiting is poll(2).
// The proxy's own connections use the asynchronous layer instead (client_connection.h,
// upstream_connection.h).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "proxy/io_result.h"

namespace lp {

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
  // poll(2) events to wait for after a kWouldBlock.
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
