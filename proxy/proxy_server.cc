#include "proxy/proxy_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace lp {
namespace {

std::string numeric_host(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof(buf));
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

uint16_t port_of(const sockaddr* sa) {
  return ntohs(sa->sa_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(sa)->sin_port
                                        : reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
}

}  // namespace

ProxyServer::ProxyServer(const Config& config, Forwarder& forwarder, ConsoleLog& console)
    : config_(config), forwarder_(forwarder), console_(console) {
  limits_.max_head_bytes = config.server.max_header_bytes;
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

ProxyServer::~ProxyServer() {
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void ProxyServer::bind() {
  const std::string& host = config_.server.host;
  std::string port = std::to_string(config_.server.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* list = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) {
    throw std::runtime_error("cannot listen on " + host + ":" + port + ": " + gai_strerror(rc));
  }
  std::string error = "no address";
  // Prefer IPv4 for "localhost": clients and SDKs most often dial 127.0.0.1.
  for (int pass = 0; pass < 2 && listen_fd_ < 0; ++pass) {
    for (addrinfo* ai = list; ai && listen_fd_ < 0; ai = ai->ai_next) {
      if ((pass == 0) != (ai->ai_family == AF_INET)) continue;
      int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      // A deep backlog: bursts of hundreds of SDK connections must not hit SYN retries.
      if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 4096) == 0) {
        listen_fd_ = fd;
        sockaddr_storage bound{};
        socklen_t len = sizeof(bound);
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
        auto* sa = reinterpret_cast<sockaddr*>(&bound);
        std::string h = numeric_host(sa);
        if (sa->sa_family == AF_INET6) h = "[" + h + "]";
        url_ = "http://" + h + ":" + std::to_string(port_of(sa));
      } else {
        error = std::strerror(errno);
        ::close(fd);
      }
    }
  }
  ::freeaddrinfo(list);
  if (listen_fd_ < 0) {
    throw std::runtime_error("cannot listen on " + host + ":" + port + ": " + error);
  }
}

void ProxyServer::shutdown() {
  if (stopping_.exchange(true)) return;
  forwarder_.begin_shutdown();
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

void ProxyServer::reject(int fd, int status, const std::string& reason) {
  std::string body = reason + "\n";
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " +
                    std::string(reason_phrase(status)) +
                    "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  PlainStream s(::dup(fd));
  write_all(s, out.data(), out.size(), deadline_after(std::chrono::seconds(1)));
}

void ProxyServer::run() {
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents) break;
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: back off briefly instead of spinning on the pending connection.
        console_.line("[proxy] accept: " + std::string(std::strerror(errno)));
        pollfd wake = {wake_fd_, POLLIN, 0};
        ::poll(&wake, 1, 100);
      }
      continue;
    }
    tune_socket(fd);
    std::string peer_ip = numeric_host(reinterpret_cast<sockaddr*>(&peer));
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (open_fds_.size() >= config_.server.max_connections) {
        reject(fd, 503, "too many connections");
        ::close(fd);
        continue;
      }
      open_fds_.insert(fd);
    }
    std::thread([this, fd, ip = std::move(peer_ip)]() mutable {
      serve_connection(fd, std::move(ip));
    }).detach();
  }
  ::close(listen_fd_);
  listen_fd_ = -1;

  // Drain: idle connections close themselves on the wake fd; busy ones get `grace`.
  std::unique_lock<std::mutex> lock(mu_);
  if (!idle_cv_.wait_for(lock, grace, [this] { return open_fds_.empty(); })) {
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    idle_cv_.wait_for(lock, std::chrono::seconds(5), [this] { return open_fds_.empty(); });
  }
}

void ProxyServer::serve_connection(int fd, std::string peer_ip) {
  {
    ClientConnection client(fd);
    client.peer_ip = std::move(peer_ip);
    RequestHead head;
    const ServerConfig& sc = config_.server;
    bool keep_open = true;
    while (keep_open && !stopping_) {
      // Waiting for a request: idle_timeout; once it has started, header_timeout in total.
      Deadline deadline =
          deadline_after(client.buffer.empty() ? sc.idle_timeout : sc.header_timeout);
      bool started = !client.buffer.empty();
      ParseResult parsed;
      while (true) {
        parsed = parse_request_head(client.buffer, limits_, &head);
        if (parsed.state != ParseResult::State::kIncomplete) break;
        if (!wait_readable(fd, deadline, wake_fd_)) {
          if (started && !stopping_) reject(fd, 408, "request head timed out");
          keep_open = false;
          break;
        }
        char buf[16 * 1024];
        ssize_t n = client.stream.read_some(buf, sizeof(buf));
        if (n == Stream::kWouldBlock) continue;
        if (n <= 0) {
          keep_open = false;
          break;
        }
        client.buffer.append(buf, static_cast<size_t>(n));
        if (!started) {
          started = true;
          deadline = deadline_after(sc.header_timeout);
        }
      }
      if (!keep_open) break;
      if (parsed.state == ParseResult::State::kError) {
        console_.line("[proxy] " + client.peer_ip + ": " + std::to_string(parsed.error_status) +
                      " " + parsed.error);
        reject(fd, parsed.error_status, parsed.error);
        break;
      }
      client.buffer.erase(0, parsed.consumed);
      keep_open = forwarder_.serve(client, head);
    }
  }  // closes the socket
  std::lock_guard<std::mutex> lock(mu_);
  open_fds_.erase(fd);
  if (open_fds_.empty()) idle_cv_.notify_all();
}

}  // namespace lp
