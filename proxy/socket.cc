#include "proxy/socket.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace lp {
namespace {

int poll_timeout_ms(Deadline deadline) {
  if (deadline == Deadline::max()) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return 0;
  // Round up so we never wake just before the deadline and spin.
  return static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30));
}

std::string errno_text(int err) {
  return std::strerror(err);
}

}  // namespace

short Stream::read_wait_events() const {
  return POLLIN;
}
short Stream::write_wait_events() const {
  return POLLOUT;
}

PlainStream::~PlainStream() {
  if (fd_ >= 0) ::close(fd_);
}

ssize_t PlainStream::read_some(char* buf, size_t n) {
  while (true) {
    ssize_t r = ::recv(fd_, buf, n, 0);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return kWouldBlock;
    error_ = errno_text(errno);
    return kFailed;
  }
}

ssize_t PlainStream::write_some(const char* buf, size_t n) {
  while (true) {
    ssize_t r = ::send(fd_, buf, n, MSG_NOSIGNAL);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return kWouldBlock;
    error_ = errno_text(errno);
    return kFailed;
  }
}

IoResult read_some(Stream& s, char* buf, size_t n, Deadline deadline, int watch_fd) {
  IoResult result;
  while (true) {
    ssize_t r = s.read_some(buf, n);
    if (r > 0) {
      result.bytes = static_cast<size_t>(r);
      return result;
    }
    if (r == 0) {
      result.status = IoResult::Status::kEof;
      return result;
    }
    if (r == Stream::kFailed) {
      result.status = IoResult::Status::kError;
      result.error = s.error();
      return result;
    }
    pollfd fds[2] = {{s.fd(), s.read_wait_events(), 0}, {watch_fd, POLLRDHUP, 0}};
    int timeout = poll_timeout_ms(deadline);
    int ready = ::poll(fds, watch_fd >= 0 ? 2 : 1, timeout);
    if (ready < 0 && errno != EINTR) {
      result.status = IoResult::Status::kError;
      result.error = errno_text(errno);
      return result;
    }
    if (watch_fd >= 0 && (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      result.status = IoResult::Status::kWatchedPeerGone;
      return result;
    }
    if (ready == 0 && timeout == 0) {
      result.status = IoResult::Status::kTimeout;
      return result;
    }
    if (ready == 0 && Clock::now() >= deadline) {
      result.status = IoResult::Status::kTimeout;
      return result;
    }
  }
}

IoResult write_all(Stream& s, const char* data, size_t n, Deadline deadline) {
  IoResult result;
  while (result.bytes < n) {
    ssize_t w = s.write_some(data + result.bytes, n - result.bytes);
    if (w > 0) {
      result.bytes += static_cast<size_t>(w);
      continue;
    }
    if (w == Stream::kFailed || w == 0) {
      result.status = IoResult::Status::kError;
      result.error = w == 0 ? "connection closed" : s.error();
      return result;
    }
    pollfd pfd = {s.fd(), s.write_wait_events(), 0};
    int timeout = poll_timeout_ms(deadline);
    int ready = ::poll(&pfd, 1, timeout);
    if (ready < 0 && errno != EINTR) {
      result.status = IoResult::Status::kError;
      result.error = errno_text(errno);
      return result;
    }
    if (ready == 0 && (timeout == 0 || Clock::now() >= deadline)) {
      result.status = IoResult::Status::kTimeout;
      return result;
    }
  }
  return result;
}

bool wait_readable(int fd, Deadline deadline, int wake_fd) {
  while (true) {
    pollfd fds[2] = {{fd, POLLIN | POLLRDHUP, 0}, {wake_fd, POLLIN, 0}};
    int timeout = poll_timeout_ms(deadline);
    int ready = ::poll(fds, wake_fd >= 0 ? 2 : 1, timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (fds[0].revents) return true;
    if (wake_fd >= 0 && fds[1].revents) return false;
    if (ready == 0 && (timeout == 0 || Clock::now() >= deadline)) return false;
  }
}

bool peer_closed(int fd) {
  char c;
  ssize_t r = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r == 0) return true;
  return r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

void tune_socket(int fd) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int connect_tcp(const std::string& host, uint16_t port, Deadline deadline, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) {
    *error = "cannot resolve " + host + ": " + ::gai_strerror(rc);
    return -1;
  }
  std::string last = "no address for " + host;
  int fd = -1;
  for (addrinfo* ai = list; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = "socket: " + errno_text(errno);
      continue;
    }
    tune_socket(fd);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    if (errno == EINPROGRESS) {
      pollfd pfd = {fd, POLLOUT, 0};
      int ready;
      do {
        ready = ::poll(&pfd, 1, poll_timeout_ms(deadline));
      } while (ready < 0 && errno == EINTR);
      if (ready > 0) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == 0) break;
        last = "connect to " + host + ":" + service + ": " + errno_text(err);
      } else {
        last = "connect to " + host + ":" + service + ": timed out";
      }
    } else {
      last = "connect to " + host + ":" + service + ": " + errno_text(errno);
    }
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(list);
  if (fd < 0) *error = last;
  return fd;
}

}  // namespace lp
