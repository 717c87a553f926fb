// mock_proxies: the upstream proxies the tests put between logging-proxy and mock_upstream.
//
//   mock_proxies (--socks5 | --http-connect) [--user U --password P] [--ignore-stdin]
//
// Listens on 127.0.0.1, port 0, prints ONE line `mock_proxies socks5=PORT` (or `connect=PORT`),
// then serves each client on its own thread: the handshake (RFC 1928/1929, or CONNECT with
// Basic credentials when --user is given), a connection to the target it names, and bytes
// relayed both ways until both sides have closed. Every tunnel opened prints `tunnel HOST:PORT`
// before the client hears of it, so a test can count tunnels; a target that cannot be reached
// prints `refused HOST:PORT` and gets SOCKS reply 5 (4 when the name does not resolve) or 502;
// wrong or missing credentials print `auth failed` (SOCKS status 1, or 407).
//
// Test-only and deliberately small: blocking sockets, at most 256 clients at a time (more are
// closed at once), handshakes bounded by a 10 s receive timeout. Exits on SIGTERM/SIGINT or
// when stdin reaches EOF (it dies with the test that holds the other end of its stdin pipe).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace {

constexpr int kMaxClients = 256;
constexpr size_t kMaxHead = 16 * 1024;

std::atomic<int> g_clients{0};
std::mutex g_out_mu;
std::string g_user, g_password;
bool g_require_auth = false;

void say(const std::string& line) {
  std::lock_guard<std::mutex> lock(g_out_mu);
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

bool send_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool send_all(int fd, const std::string& s) {
  return send_all(fd, s.data(), s.size());
}

bool recv_exact(int fd, void* out, size_t n) {
  char* p = static_cast<char*>(out);
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

std::string base64(const std::string& in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned v = 0;
  int bits = 0;
  for (unsigned char c : in) {
    v = (v << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(a[(v >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(a[(v << (6 - bits)) & 63]);
  while (out.size() % 4) out.push_back('=');
  return out;
}

// Connects to host:port; the fd, or -1 with *socks_code the RFC 1928 reply for the failure.
int connect_target(const std::string& host, int port, int* socks_code) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) {
    *socks_code = 4;
    return -1;
  }
  *socks_code = 1;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      ::freeaddrinfo(res);
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    *socks_code = errno == ECONNREFUSED   ? 5
                  : errno == ENETUNREACH  ? 3
                  : errno == EHOSTUNREACH ? 4
                                          : 1;
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return -1;
}

// Both directions until both have ended; a side's EOF is passed on as a half-close.
void relay(int a, int b) {
  timeval none{};
  ::setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  bool open[2] = {true, true};  // a->b, b->a
  char buf[16384];
  while (open[0] || open[1]) {
    // A direction that ended is left out (fd -1): its socket may report POLLHUP forever.
    pollfd fds[2] = {{open[0] ? a : -1, POLLIN, 0}, {open[1] ? b : -1, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      if (!open[i] || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const int from = i == 0 ? a : b, to = i == 0 ? b : a;
      const ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || !send_all(to, buf, static_cast<size_t>(n))) {
        open[i] = false;
        ::shutdown(to, SHUT_WR);
        if (n < 0) return;  // reset: nothing more will come either way
      }
    }
  }
}

std::string host_port(const std::string& host, int port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

void serve_socks5(int client) {
  unsigned char head[2];
  if (!recv_exact(client, head, 2) || head[0] != 5) return;
  unsigned char methods[255];
  if (!recv_exact(client, methods, head[1])) return;
  const unsigned char want = g_require_auth ? 2 : 0;
  bool offered = false;
  for (int i = 0; i < head[1]; ++i) offered = offered || methods[i] == want;
  const unsigned char choice[2] = {5, static_cast<unsigned char>(offered ? want : 0xff)};
  if (!send_all(client, choice, 2) || !offered) return;
  if (want == 2) {
    unsigned char ver_len[2], len;
    char user[256] = {}, password[256] = {};
    if (!recv_exact(client, ver_len, 2) || !recv_exact(client, user, ver_len[1]) ||
        !recv_exact(client, &len, 1) || !recv_exact(client, password, len)) {
      return;
    }
    const bool ok =
        std::string(user, ver_len[1]) == g_user && std::string(password, len) == g_password;
    const unsigned char status[2] = {1, static_cast<unsigned char>(ok ? 0 : 1)};
    if (!ok) say("auth failed");
    if (!send_all(client, status, 2) || !ok) return;
  }
  unsigned char req[4];
  if (!recv_exact(client, req, 4) || req[0] != 5) return;
  std::string host;
  if (req[3] == 1 || req[3] == 4) {
    unsigned char addr[16];
    char text[INET6_ADDRSTRLEN];
    const bool v4 = req[3] == 1;
    if (!recv_exact(client, addr, v4 ? 4 : 16)) return;
    ::inet_ntop(v4 ? AF_INET : AF_INET6, addr, text, sizeof text);
    host = text;
  } else if (req[3] == 3) {
    unsigned char len;
    char name[256];
    if (!recv_exact(client, &len, 1) || !recv_exact(client, name, len)) return;
    host.assign(name, len);
  } else {
    return;
  }
  unsigned char port_bytes[2];
  if (!recv_exact(client, port_bytes, 2)) return;
  const int port = port_bytes[0] << 8 | port_bytes[1];
  unsigned char reply[10] = {5, 0, 0, 1, 127, 0, 0, 1, 0, 0};
  if (req[1] != 1) {
    reply[1] = 7;
    send_all(client, reply, sizeof reply);
    return;
  }
  int code = 0;
  const int target = connect_target(host, port, &code);
  if (target < 0) {
    say("refused " + host_port(host, port));
    reply[1] = static_cast<unsigned char>(code);
    send_all(client, reply, sizeof reply);
    return;
  }
  say("tunnel " + host_port(host, port));
  if (send_all(client, reply, sizeof reply)) relay(client, target);
  ::close(target);
}

std::optional<std::string> header(const std::string& head, const std::string& name) {
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string::npos) {
    pos += 2;
    if (head.size() - pos > name.size() &&
        ::strncasecmp(head.c_str() + pos, name.c_str(), name.size()) == 0 &&
        head[pos + name.size()] == ':') {
      size_t v = pos + name.size() + 1;
      while (v < head.size() && head[v] == ' ') ++v;
      return head.substr(v, head.find("\r\n", v) - v);
    }
  }
  return std::nullopt;
}

void serve_http_connect(int client) {
  std::string buf;
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    char chunk[4096];
    const ssize_t n = ::recv(client, chunk, sizeof chunk, 0);
    if (n <= 0 || buf.size() > kMaxHead) return;
    buf.append(chunk, static_cast<size_t>(n));
  }
  const std::string head = buf.substr(0, end + 2);
  const std::string early = buf.substr(end + 4);
  const size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
  if (head.compare(0, 8, "CONNECT ") != 0 || sp2 == std::string::npos) {
    send_all(client, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  const std::string authority = head.substr(sp1 + 1, sp2 - sp1 - 1);
  const size_t colon = authority.rfind(':');
  std::string host = authority.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const int port = colon == std::string::npos ? 0 : std::atoi(authority.c_str() + colon + 1);
  if (g_require_auth) {
    const std::optional<std::string> auth = header(head, "Proxy-Authorization");
    if (!auth || *auth != "Basic " + base64(g_user + ":" + g_password)) {
      say("auth failed");
      send_all(client,
               "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic "
               "realm=\"mock\"\r\nContent-Length: 0\r\n\r\n");
      return;
    }
  }
  int code = 0;
  const int target = connect_target(host, port, &code);
  if (target < 0) {
    say("refused " + host_port(host, port));
    send_all(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  say("tunnel " + host_port(host, port));
  if (send_all(client, "HTTP/1.1 200 Connection established\r\n\r\n") && send_all(target, early)) {
    relay(client, target);
  }
  ::close(target);
}

void usage() {
  std::fprintf(stderr,
               "usage: mock_proxies (--socks5 | --http-connect) [--user U --password P] "
               "[--ignore-stdin]\n");
}

}  // namespace

int main(int argc, char** argv) {
  bool socks = false, http = false, watch_stdin = true, have_password = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--socks5") {
      socks = true;
    } else if (a == "--http-connect") {
      http = true;
    } else if (a == "--user" && i + 1 < argc) {
      g_user = argv[++i];
      g_require_auth = true;
    } else if (a == "--password" && i + 1 < argc) {
      g_password = argv[++i];
      have_password = true;
    } else if (a == "--ignore-stdin") {
      watch_stdin = false;
    } else {
      usage();
      return 2;
    }
  }
  if (socks == http || g_require_auth != have_password) {
    usage();
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 128) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::fprintf(stderr, "mock_proxies: cannot listen on 127.0.0.1: %s\n", std::strerror(errno));
    return 1;
  }
  say(std::string("mock_proxies ") + (socks ? "socks5=" : "connect=") +
      std::to_string(ntohs(addr.sin_port)));

  if (watch_stdin) {
    std::thread([] {
      char buf[256];
      while (::read(STDIN_FILENO, buf, sizeof buf) > 0) {
      }
      std::fflush(stdout);
      std::_Exit(0);
    }).detach();
  }

  while (true) {
    const int client = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::fprintf(stderr, "mock_proxies: accept: %s\n", std::strerror(errno));
      return 1;
    }
    if (g_clients.fetch_add(1) >= kMaxClients) {
      g_clients.fetch_sub(1);
      ::close(client);
      continue;
    }
    std::thread([client, socks] {
      const timeval handshake_limit{10, 0};
      ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &handshake_limit, sizeof handshake_limit);
      const int one = 1;
      ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (socks) {
        serve_socks5(client);
      } else {
        serve_http_connect(client);
      }
      ::close(client);
      g_clients.fetch_sub(1);
    }).detach();
  }
}
