#include "common/healthcheck.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "common/ascii.h"
#include "common/config.h"
#include "common/http_message.h"

namespace lp {
namespace {

using Clock = std::chrono::steady_clock;

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

// Why a step failed; `timed_out` when the deadline ran out during `cause` (a phrase such as
// "connecting"), which is then worded "timed out after ...".
struct Failure {
  std::string cause;
  bool timed_out = false;
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string format_timeout(std::chrono::milliseconds t) {
  if (t.count() % 1000 == 0) return std::to_string(t.count() / 1000) + " s";
  return std::to_string(t.count()) + " ms";
}

// Milliseconds left for poll(), rounded up so that a wait never ends before the deadline.
int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > 1000000 ? 1000000 : static_cast<int>(left);
}

std::string unbracket(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::string(host);
}

std::string host_for_url(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

std::optional<Address> literal_address(const std::string& host, int port) {
  Address a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    a.length = sizeof(sockaddr_in);
    return a;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    a.length = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

// getaddrinfo on a detached thread, so that a stuck DNS server cannot hold the caller past its
// deadline; the state is shared so the thread may finish after the caller has gone.
struct Lookup {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int rc = 0;
  std::vector<Address> addresses;
};

std::vector<Address> resolve(const std::string& host, int port, Clock::time_point deadline,
                             Failure* failure) {
  if (iequals(host, "localhost")) {
    return {*literal_address("127.0.0.1", port), *literal_address("::1", port)};
  }
  if (auto a = literal_address(host, port)) return {*a};

  auto lookup = std::make_shared<Lookup>();
  std::thread([lookup, host, service = std::to_string(port)] {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
    std::vector<Address> found;
    for (addrinfo* p = list; rc == 0 && p; p = p->ai_next) {
      if (p->ai_addrlen > sizeof(sockaddr_storage)) continue;
      Address a;
      std::memcpy(&a.storage, p->ai_addr, p->ai_addrlen);
      a.length = p->ai_addrlen;
      found.push_back(a);
    }
    if (list) ::freeaddrinfo(list);
    std::lock_guard lock(lookup->mu);
    lookup->rc = rc;
    lookup->addresses = std::move(found);
    lookup->done = true;
    lookup->cv.notify_all();
  }).detach();

  std::unique_lock lock(lookup->mu);
  if (!lookup->cv.wait_until(lock, deadline, [&] { return lookup->done; })) {
    *failure = {"resolving " + host, true};
    return {};
  }
  if (lookup->rc != 0) {
    *failure = {"cannot resolve " + host + ": " + ::gai_strerror(lookup->rc)};
  } else if (lookup->addresses.empty()) {
    *failure = {"cannot resolve " + host + ": no address"};
  }
  return lookup->addresses;
}

std::string connect_error(int error) {
  switch (error) {
    case ECONNREFUSED:
      return "connection refused";
    case ETIMEDOUT:
      return "connection timed out";
    case EHOSTUNREACH:
      return "host unreachable";
    case ENETUNREACH:
      return "network unreachable";
    default:
      return std::string("cannot connect: ") + std::strerror(error);
  }
}

// A connected non-blocking socket, or -1 with *failure set.
int connect_to(const Address& address, Clock::time_point deadline, Failure* failure) {
  int fd = ::socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *failure = {std::string("cannot create a socket: ") + std::strerror(errno)};
    return -1;
  }
  Fd guard(fd);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address.storage), address.length) != 0) {
    if (errno != EINPROGRESS) {
      *failure = {connect_error(errno)};
      return -1;
    }
    pollfd p{fd, POLLOUT, 0};
    int n;
    do {
      n = ::poll(&p, 1, remaining_ms(deadline));
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      *failure = {"connecting", true};
      return -1;
    }
    int error = 0;
    socklen_t length = sizeof error;
    if (n < 0) {
      error = errno;
    } else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
      error = errno;
    }
    if (error != 0) {
      *failure = {connect_error(error)};
      return -1;
    }
  }
  return guard.release();
}

// Waits until `fd` is ready for `events`; false with *failure set on the deadline or an error.
bool wait_ready(int fd, short events, Clock::time_point deadline, const char* doing,
                Failure* failure) {
  pollfd p{fd, events, 0};
  int n;
  do {
    n = ::poll(&p, 1, remaining_ms(deadline));
  } while (n < 0 && errno == EINTR);
  if (n == 0) {
    *failure = {doing, true};
    return false;
  }
  if (n < 0) {
    *failure = {std::string(doing) + ": " + std::strerror(errno)};
    return false;
  }
  return true;
}

bool send_request(int fd, std::string_view request, Clock::time_point deadline, Failure* failure) {
  while (!request.empty()) {
    if (!wait_ready(fd, POLLOUT, deadline, "sending the request", failure)) return false;
    ssize_t n = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      *failure = {std::string("sending the request: ") + std::strerror(errno)};
      return false;
    }
    request.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until a final (non-1xx) response head is complete.
std::optional<ResponseHead> read_head(int fd, Clock::time_point deadline, Failure* failure) {
  std::string buffer;
  HeadLimits limits;
  for (;;) {
    ResponseHead head;
    ParseResult parsed = parse_response_head(buffer, limits, &head);
    if (parsed.state == ParseResult::State::kDone) {
      if (head.status >= 100 && head.status < 200 && head.status != 101) {
        buffer.erase(0, parsed.consumed);  // an interim answer: the real one follows
        continue;
      }
      return head;
    }
    if (parsed.state == ParseResult::State::kError) {
      *failure = {"answered with a malformed head: " + parsed.error};
      return std::nullopt;
    }
    if (!wait_ready(fd, POLLIN, deadline, "waiting for the answer", failure)) return std::nullopt;
    char chunk[4096];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      *failure = {std::string("reading the answer: ") + std::strerror(errno)};
      return std::nullopt;
    }
    if (n == 0) {
      *failure = {buffer.empty() ? "closed the connection without answering"
                                 : "closed the connection in the middle of its answer"};
      return std::nullopt;
    }
    buffer.append(chunk, static_cast<size_t>(n));
  }
}

int check(const std::string& host, int port, std::string_view path, Clock::time_point deadline,
          Failure* failure) {
  std::vector<Address> addresses = resolve(host, port, deadline, failure);
  if (addresses.empty()) return 1;
  int fd = -1;
  std::optional<Failure> first_failure;
  for (const Address& address : addresses) {
    Failure f;
    fd = connect_to(address, deadline, &f);
    if (fd >= 0) break;
    if (!first_failure) first_failure = f;
    if (f.timed_out) break;
  }
  if (fd < 0) {
    *failure = *first_failure;
    return 1;
  }
  Fd guard(fd);
  std::string request = "GET " + std::string(path) + " HTTP/1.1\r\nHost: " + host_for_url(host) +
                        ":" + std::to_string(port) +
                        "\r\nUser-Agent: lp-healthcheck\r\nConnection: close\r\n\r\n";
  if (!send_request(fd, request, deadline, failure)) return 1;
  std::optional<ResponseHead> head = read_head(fd, deadline, failure);
  if (!head) return 1;
  if (head->status != 200) {
    *failure = {"answered " + std::to_string(head->status) +
                (head->reason.empty() ? "" : " " + head->reason)};
    return 1;
  }
  return 0;
}

}  // namespace

int run_healthcheck(std::string_view program, const std::string& host, int port,
                    std::string_view path, std::chrono::milliseconds timeout, std::ostream& err) {
  const std::string bare_host = unbracket(host);
  const std::string url =
      "http://" + host_for_url(bare_host) + ":" + std::to_string(port) + std::string(path);
  try {
    if (port <= 0 || port > 65535) {
      err << program << ": " << url << ": port " << port << " cannot be checked\n";
      return 1;
    }
    Failure failure;
    if (check(bare_host, port, path, Clock::now() + timeout, &failure) == 0) return 0;
    err << program << ": " << url << ": ";
    if (failure.timed_out) {
      err << "timed out after " << format_timeout(timeout) << " " << failure.cause << "\n";
    } else {
      err << failure.cause << "\n";
    }
  } catch (const std::exception& e) {
    err << program << ": " << url << ": " << e.what() << "\n";
  } catch (...) {
    err << program << ": " << url << ": unexpected error\n";
  }
  return 1;
}

std::string healthcheck_host(std::string_view listen_host) {
  if (listen_host.empty() || listen_host == "0.0.0.0") return "127.0.0.1";
  if (listen_host == "::" || listen_host == "[::]") return "::1";
  return unbracket(listen_host);
}

HealthcheckArgs parse_healthcheck_args(int argc, const char* const* argv, int first) {
  HealthcheckArgs out;
  std::vector<const char*> rest;
  std::string timeout_error;
  for (int i = first; i < argc; ++i) {
    const std::string_view arg = argv[i];
    std::optional<std::string_view> value;
    if (arg == "--config" && i + 1 < argc) {
      rest.push_back(argv[i]);
      rest.push_back(argv[++i]);  // a file named "--timeout" stays a file name
      continue;
    } else if (arg == "--timeout") {
      if (i + 1 < argc) value = argv[++i];
    } else if (arg.starts_with("--timeout=")) {
      value = arg.substr(10);
    } else {
      rest.push_back(argv[i]);
      continue;
    }
    if (!timeout_error.empty()) continue;
    std::optional<std::chrono::milliseconds> t;
    if (value) t = parse_duration(*value);
    if (!t || t->count() <= 0) {
      timeout_error = "--timeout needs a duration greater than 0 (e.g. \"3s\", \"500ms\")";
    } else {
      out.timeout = *t;
    }
  }
  out.cli = parse_cli_args(static_cast<int>(rest.size()), rest.data(), 0);
  if (out.cli.action == CliArgs::Action::kRun) {
    if (!timeout_error.empty()) {
      out.cli.action = CliArgs::Action::kError;
      out.cli.error = timeout_error;
    } else if (out.cli.check) {
      out.cli.action = CliArgs::Action::kError;
      out.cli.error = "--check is not an option of healthcheck";
    }
  }
  return out;
}

}  // namespace lp
