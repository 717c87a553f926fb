// mock_upstream_fast: the benchmark's upstream. One epoll loop per thread (SO_REUSEPORT),
// non-blocking sockets, keep-alive, no allocation per request beyond the connection's
// buffers: it must cost as little CPU as possible, because it shares 2 cores with the client
// and the proxy it is measured through.
//
//   POST /json            -> 200, a 1 KiB JSON answer (Content-Length); the request body is
//                            read and discarded (Content-Length or chunked)
//   GET  /sse?n=N&ms=D    -> 200 text/event-stream, chunked, N OpenAI-style events D ms apart
//                            (the first at once, with the head), then "data: [DONE]". Each
//                            event carries "seq" (0..N-1) and "t_us": CLOCK_MONOTONIC in µs
//                            taken just before the write, so a client on this machine can
//                            compute each event's delay as arrival - t_us.
//   GET  /large?bytes=N   -> 200, N bytes (Content-Length), streamed from one static buffer
//                            as fast as the reader takes them
//   POST /upload          -> reads and counts the body (Content-Length or chunked), then 200
//                            {"bytes":N}
//   anything else         -> 404
//
// Usage: mock_upstream_fast [--host 127.0.0.1] [--port 0] [--threads 1]
// Prints "mock_upstream_fast listening on http://HOST:PORT" once ready.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Value of `key` in a query string, or -1.
int64_t query_int(std::string_view target, std::string_view key) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return -1;
  std::string_view qs = target.substr(q + 1);
  while (!qs.empty()) {
    size_t amp = qs.find('&');
    std::string_view kv = qs.substr(0, amp);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos && kv.substr(0, eq) == key) {
      return std::strtoll(std::string(kv.substr(eq + 1)).c_str(), nullptr, 10);
    }
    if (amp == std::string_view::npos) break;
    qs.remove_prefix(amp + 1);
  }
  return -1;
}

std::string json_response() {
  // A chat-completion-shaped answer padded to exactly 1024 bytes.
  std::string body =
      R"({"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":")";
  std::string tail =
      R"("},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":200,)"
      R"("total_tokens":210}})";
  body.append(1024 - body.size() - tail.size(), 'x');
  body += tail;
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

const std::string kJsonResponse = json_response();
const std::string kNotFound =
    "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n";
const std::string kSseHead =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    "Transfer-Encoding: chunked\r\n\r\n";

constexpr size_t kLargeBuf = 256 * 1024;

struct Conn {
  int fd = -1;
  uint64_t gen = 0;
  std::string in;   // unparsed request bytes
  std::string out;  // response bytes not yet written
  size_t out_off = 0;
  bool want_out = false;
  bool close_after = false;  // Connection: close / HTTP/1.0
  bool dead = false;

  enum class State { kHead, kBody, kLarge, kSse } state = State::kHead;
  // request body
  enum class Route { kJson, kUpload, kOther } route = Route::kOther;
  bool chunked = false;
  uint64_t body_left = 0;
  uint64_t body_count = 0;
  // chunked decoder
  enum class Chunk { kSize, kData, kDataCrlf, kTrailer } chunk = Chunk::kSize;
  std::string chunk_line;
  // pending GET after head
  std::string target;
  // large
  uint64_t large_left = 0;
  // sse
  int sse_n = 0, sse_next = 0;
  int64_t sse_t0 = 0, sse_period_ns = 0;
};

struct Timer {
  int64_t due;
  int fd;
  uint64_t gen;
  bool operator>(const Timer& o) const { return due > o.due; }
};

class Loop {
 public:
  explicit Loop(int listen_fd) : listen_fd_(listen_fd) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd_;
    epoll_ctl(ep_, EPOLL_CTL_ADD, listen_fd_, &ev);
    large_.assign(kLargeBuf, 'L');
    for (size_t i = 0; i < kLargeBuf; i += 64) large_[i] = '\n';
  }

  void run() {
    std::vector<epoll_event> events(1024);
    while (true) {
      int timeout = -1;
      if (!timers_.empty()) {
        int64_t left = timers_.top().due - mono_ns();
        timeout = left <= 0 ? 0 : static_cast<int>((left + 999999) / 1000000);
      }
      int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout);
      if (n < 0 && errno != EINTR) {
        std::perror("epoll_wait");
        return;
      }
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == listen_fd_) {
          accept_all();
          continue;
        }
        auto it = conns_.find(fd);
        if (it == conns_.end()) continue;
        Conn& c = *it->second;
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
        if (!c.dead && (events[i].events & EPOLLOUT)) flush(c);
        if (c.dead) close_conn(fd);
      }
      run_timers();
    }
  }

 private:
  void accept_all() {
    while (true) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto c = std::make_unique<Conn>();
      c->fd = fd;
      c->gen = ++gen_;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.fd = fd;
      epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
      conns_[fd] = std::move(c);
    }
  }

  void close_conn(int fd) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns_.erase(fd);
  }

  void set_want_out(Conn& c, bool want) {
    if (c.want_out == want) return;
    c.want_out = want;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (want ? static_cast<uint32_t>(EPOLLOUT) : 0u);
    ev.data.fd = c.fd;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void on_readable(Conn& c) {
    char buf[64 * 1024];
    while (!c.dead) {
      ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
      if (n > 0) {
        std::string_view data(buf, static_cast<size_t>(n));
        if (c.state == Conn::State::kBody && c.in.empty()) {
          // Fast path for bodies: count in place, keep only what follows.
          size_t used = consume_body(c, data);
          data.remove_prefix(used);
          if (c.state != Conn::State::kBody) dispatch(c);
        }
        c.in.append(data);
        process(c);
        if (static_cast<size_t>(n) < sizeof(buf)) break;
        continue;
      }
      if (n == 0) {
        c.dead = true;  // peer closed; an SSE/large response in flight is dropped with it
        return;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) c.dead = true;
      return;
    }
  }

  // Consumes body bytes from `data`; returns how many were used. Leaves state kBody until
  // the body is complete.
  size_t consume_body(Conn& c, std::string_view data) {
    if (!c.chunked) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(c.body_left, data.size()));
      c.body_left -= n;
      c.body_count += n;
      if (c.body_left == 0) c.state = Conn::State::kHead;  // marks "complete"; dispatch follows
      return n;
    }
    size_t i = 0;
    while (i < data.size()) {
      switch (c.chunk) {
        case Conn::Chunk::kSize:
        case Conn::Chunk::kTrailer: {
          size_t nl = data.find('\n', i);
          if (nl == std::string_view::npos) {
            c.chunk_line.append(data.substr(i));
            return data.size();
          }
          c.chunk_line.append(data.substr(i, nl - i));
          i = nl + 1;
          if (c.chunk == Conn::Chunk::kTrailer) {
            bool empty = c.chunk_line.empty() || c.chunk_line == "\r";
            c.chunk_line.clear();
            if (empty) {
              c.state = Conn::State::kHead;
              return i;
            }
            break;
          }
          uint64_t size = std::strtoull(c.chunk_line.c_str(), nullptr, 16);
          c.chunk_line.clear();
          if (size == 0) {
            c.chunk = Conn::Chunk::kTrailer;
          } else {
            c.body_left = size;
            c.chunk = Conn::Chunk::kData;
          }
          break;
        }
        case Conn::Chunk::kData: {
          size_t n = static_cast<size_t>(std::min<uint64_t>(c.body_left, data.size() - i));
          c.body_left -= n;
          c.body_count += n;
          i += n;
          if (c.body_left == 0) c.chunk = Conn::Chunk::kDataCrlf;
          break;
        }
        case Conn::Chunk::kDataCrlf: {
          size_t nl = data.find('\n', i);
          if (nl == std::string_view::npos) return data.size();
          i = nl + 1;
          c.chunk = Conn::Chunk::kSize;
          break;
        }
      }
    }
    return i;
  }

  void process(Conn& c) {
    while (!c.dead) {
      if (c.state == Conn::State::kLarge || c.state == Conn::State::kSse) return;
      if (c.state == Conn::State::kBody) {
        if (c.in.empty()) return;
        size_t used = consume_body(c, c.in);
        c.in.erase(0, used);
        if (c.state == Conn::State::kBody) return;
        dispatch(c);
        continue;
      }
      size_t end = c.in.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (c.in.size() > 64 * 1024) c.dead = true;
        return;
      }
      std::string_view head(c.in.data(), end + 2);
      size_t sp1 = head.find(' ');
      size_t sp2 = head.find(' ', sp1 + 1);
      size_t eol = head.find("\r\n");
      if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || sp2 > eol) {
        c.dead = true;
        return;
      }
      std::string_view method = head.substr(0, sp1);
      c.target.assign(head.substr(sp1 + 1, sp2 - sp1 - 1));
      c.close_after = head.substr(sp2 + 1, eol - sp2 - 1) == "HTTP/1.0";
      c.chunked = false;
      c.body_left = 0;
      c.body_count = 0;
      c.chunk = Conn::Chunk::kSize;
      c.chunk_line.clear();
      size_t pos = eol + 2;
      while (pos < head.size()) {
        size_t e = head.find("\r\n", pos);
        std::string_view line = head.substr(pos, e - pos);
        pos = e + 2;
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view name = line.substr(0, colon);
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        if (iequals(name, "content-length")) {
          c.body_left = std::strtoull(std::string(value).c_str(), nullptr, 10);
        } else if (iequals(name, "transfer-encoding")) {
          c.chunked = value.find("chunked") != std::string_view::npos;
        } else if (iequals(name, "connection")) {
          if (iequals(value, "close")) c.close_after = true;
        }
      }
      std::string_view path = std::string_view(c.target).substr(0, c.target.find('?'));
      if (method == "POST" && path == "/json") {
        c.route = Conn::Route::kJson;
      } else if (method == "POST" && path == "/upload") {
        c.route = Conn::Route::kUpload;
      } else {
        c.route = Conn::Route::kOther;
      }
      c.in.erase(0, end + 4);  // `method` and `head` point into c.in: last use above
      if (c.chunked || c.body_left > 0) {
        c.state = Conn::State::kBody;
        continue;
      }
      dispatch(c);
    }
  }

  // The request (head and body) is complete: start the response.
  void dispatch(Conn& c) {
    c.state = Conn::State::kHead;
    std::string_view path = std::string_view(c.target).substr(0, c.target.find('?'));
    if (c.route == Conn::Route::kJson) {
      c.out.append(kJsonResponse);
    } else if (c.route == Conn::Route::kUpload) {
      std::string body = "{\"bytes\":" + std::to_string(c.body_count) + "}";
      c.out += "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
    } else if (path == "/large") {
      int64_t bytes = query_int(c.target, "bytes");
      if (bytes < 0) bytes = 0;
      c.out += "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
               std::to_string(bytes) + "\r\n\r\n";
      c.large_left = static_cast<uint64_t>(bytes);
      if (c.large_left > 0) c.state = Conn::State::kLarge;
    } else if (path == "/sse") {
      int64_t n = query_int(c.target, "n");
      int64_t ms = query_int(c.target, "ms");
      c.sse_n = static_cast<int>(n < 0 ? 10 : n);
      c.sse_next = 0;
      c.sse_period_ns = (ms < 0 ? 20 : ms) * 1000000;
      c.sse_t0 = mono_ns();
      c.out.append(kSseHead);
      c.state = Conn::State::kSse;
      sse_emit(c);  // the first event goes out with the head
      return;
    } else {
      c.out.append(kNotFound);
    }
    flush(c);
  }

  void sse_emit(Conn& c) {
    if (c.sse_next < c.sse_n) {
      char event[512];
      int64_t stamp_us = mono_ns() / 1000;
      int len = std::snprintf(
          event, sizeof(event),
          "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":"
          "1700000000,\"model\":\"bench\",\"seq\":%d,\"t_us\":%lld,\"choices\":[{\"index\":0,"
          "\"delta\":{\"content\":\" token\"},\"finish_reason\":null}]}\n\n",
          c.sse_next, static_cast<long long>(stamp_us));
      char size[16];
      int sl = std::snprintf(size, sizeof(size), "%x\r\n", len);
      c.out.append(size, static_cast<size_t>(sl));
      c.out.append(event, static_cast<size_t>(len));
      c.out.append("\r\n");
      ++c.sse_next;
    }
    if (c.sse_next >= c.sse_n) {
      static constexpr std::string_view kDone = "e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";
      c.out.append(kDone);
      c.state = Conn::State::kHead;
    } else {
      timers_.push({c.sse_t0 + c.sse_period_ns * c.sse_next, c.fd, c.gen});
    }
    flush(c);
    if (!c.dead && c.state == Conn::State::kHead) process(c);
  }

  void run_timers() {
    int64_t now = mono_ns();
    while (!timers_.empty() && timers_.top().due <= now) {
      Timer t = timers_.top();
      timers_.pop();
      auto it = conns_.find(t.fd);
      if (it == conns_.end() || it->second->gen != t.gen) continue;
      Conn& c = *it->second;
      if (c.state != Conn::State::kSse) continue;
      sse_emit(c);
      if (c.dead) close_conn(t.fd);
    }
  }

  void flush(Conn& c) {
    while (c.out_off < c.out.size()) {
      ssize_t n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        set_want_out(c, true);
        return;
      }
      c.dead = true;
      return;
    }
    c.out.clear();
    c.out_off = 0;
    while (c.state == Conn::State::kLarge && c.large_left > 0) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(c.large_left, kLargeBuf));
      ssize_t n = ::send(c.fd, large_.data(), want, MSG_NOSIGNAL);
      if (n > 0) {
        c.large_left -= static_cast<uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        set_want_out(c, true);
        return;
      }
      c.dead = true;
      return;
    }
    if (c.state == Conn::State::kLarge) {
      c.state = Conn::State::kHead;
      process(c);
      if (c.dead || c.out_off < c.out.size()) return;
    }
    set_want_out(c, false);
    if (c.close_after && c.state == Conn::State::kHead) c.dead = true;
  }

  int listen_fd_;
  int ep_;
  uint64_t gen_ = 0;
  std::string large_;
  std::unordered_map<int, std::unique_ptr<Conn>> conns_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
};

int make_listener(const std::string& host, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "mock_upstream_fast: --host must be an IPv4 address\n");
    std::exit(2);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 4096) != 0) {
    std::perror("mock_upstream_fast: bind/listen");
    std::exit(1);
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "mock_upstream_fast: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--host") {
      host = next();
    } else if (a == "--port") {
      port = std::atoi(next().c_str());
    } else if (a == "--threads") {
      threads = std::max(1, std::atoi(next().c_str()));
    } else {
      std::fprintf(stderr, "usage: mock_upstream_fast [--host IP] [--port N] [--threads N]\n");
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  int first = make_listener(host, static_cast<uint16_t>(port));
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  getsockname(first, reinterpret_cast<sockaddr*>(&bound), &len);
  uint16_t actual = ntohs(bound.sin_port);
  std::vector<int> fds = {first};
  for (int t = 1; t < threads; ++t) fds.push_back(make_listener(host, actual));
  std::printf("mock_upstream_fast listening on http://%s:%u\n", host.c_str(), actual);
  std::fflush(stdout);
  std::vector<std::thread> workers;
  for (size_t t = 1; t < fds.size(); ++t) {
    workers.emplace_back([fd = fds[t]] { Loop(fd).run(); });
  }
  Loop(first).run();
  for (auto& w : workers) w.join();
  return 0;
}
