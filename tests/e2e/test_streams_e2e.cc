// Many concurrent SSE streams through one proxy: thousands of open streams must cost memory,
// not threads. A real logging-proxy (two event-loop threads) in front of the real mock
// upstream, driven by one poll(2) loop here that holds every stream open at once.
//
// LP_E2E_STREAMS=N sets the number of streams (default 2,000; 8,000 by hand with
// `ulimit -n 65536`). Figures (RSS per stream, threads, the plain GET's latency) are logged
// with MESSAGE; the asserted bounds are deliberately generous.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

#include <doctest/doctest.h>

#include "tests/e2e/harness.h"

using namespace e2e;

namespace {

int stream_count() {
  const char* env = std::getenv("LP_E2E_STREAMS");
  const int n = env ? std::atoi(env) : 0;
  return n > 0 ? n : 2000;
}

// One SSE stream on a non-blocking socket, advanced by StreamSet::pump.
struct SseStream {
  enum class State { kConnecting, kSending, kHead, kBody, kDone, kFailed };
  int fd = -1;
  State state = State::kConnecting;
  std::string request;
  size_t sent = 0;
  std::string in;
  BodyDecoder decoder;
  size_t events = 0;  // "\n\n"-terminated events seen in the decoded body
  std::string body_tail;
  std::string error;
};

class StreamSet {
 public:
  StreamSet(int port, int n, const std::string& target) : streams_(static_cast<size_t>(n)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (size_t k = 0; k < streams_.size(); ++k) {
      SseStream& s = streams_[k];
      s.request = make_request("GET", target + "&k=" + std::to_string(k), port);
      s.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (s.fd < 0) {
        fail(s, std::string("socket: ") + std::strerror(errno));
        continue;
      }
      int one = 1;
      ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        s.state = SseStream::State::kSending;
      } else if (errno != EINPROGRESS) {
        fail(s, std::string("connect: ") + std::strerror(errno));
      }
    }
  }
  ~StreamSet() {
    for (auto& s : streams_) {
      if (s.fd >= 0) ::close(s.fd);
    }
  }

  // One poll round over every open stream (at most `timeout`).
  void pump(Ms timeout) {
    pfds_.clear();
    index_.clear();
    for (size_t k = 0; k < streams_.size(); ++k) {
      const SseStream& s = streams_[k];
      if (s.fd < 0) continue;
      const bool writing =
          s.state == SseStream::State::kConnecting || s.state == SseStream::State::kSending;
      pfds_.push_back(pollfd{s.fd, static_cast<short>(writing ? POLLOUT : POLLIN), 0});
      index_.push_back(k);
    }
    if (pfds_.empty()) return;
    if (::poll(pfds_.data(), pfds_.size(), static_cast<int>(timeout.count())) <= 0) return;
    for (size_t p = 0; p < pfds_.size(); ++p) {
      if (pfds_[p].revents) advance(streams_[index_[p]]);
    }
  }

  long count(SseStream::State state) const {
    return static_cast<long>(std::count_if(streams_.begin(), streams_.end(),
                                           [&](const SseStream& s) { return s.state == state; }));
  }
  long headed() const { return count(SseStream::State::kBody) + count(SseStream::State::kDone); }
  long finished() const {
    return count(SseStream::State::kDone) + count(SseStream::State::kFailed);
  }
  const std::vector<SseStream>& streams() const { return streams_; }

 private:
  void fail(SseStream& s, std::string why) {
    s.state = SseStream::State::kFailed;
    s.error = std::move(why);
    if (s.fd >= 0) ::close(s.fd);
    s.fd = -1;
  }
  void done(SseStream& s) {
    s.state = SseStream::State::kDone;
    ::close(s.fd);
    s.fd = -1;
  }
  void on_body(SseStream& s, std::string_view data) {
    s.body_tail.append(data);
    size_t end;
    while ((end = s.body_tail.find("\n\n")) != std::string::npos) {
      ++s.events;
      s.body_tail.erase(0, end + 2);
    }
  }
  void advance(SseStream& s) {
    if (s.state == SseStream::State::kConnecting) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) return fail(s, std::string("connect: ") + std::strerror(err));
      s.state = SseStream::State::kSending;
    }
    if (s.state == SseStream::State::kSending) {
      const ssize_t n =
          ::send(s.fd, s.request.data() + s.sent, s.request.size() - s.sent, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN) return fail(s, std::string("send: ") + std::strerror(errno));
      if (n > 0) s.sent += static_cast<size_t>(n);
      if (s.sent == s.request.size()) s.state = SseStream::State::kHead;
      return;
    }
    char buf[16384];
    const ssize_t got = ::recv(s.fd, buf, sizeof buf, 0);
    if (got < 0) {
      if (errno == EAGAIN) return;
      return fail(s, std::string("recv: ") + std::strerror(errno));
    }
    if (got == 0) return fail(s, "connection closed early");
    s.in.append(buf, static_cast<size_t>(got));
    if (s.state == SseStream::State::kHead) {
      const size_t end = s.in.find("\r\n\r\n");
      if (end == std::string::npos) return;
      auto head = parse_response_head(std::string_view(s.in).substr(0, end + 4));
      if (!head) return fail(s, "bad response head");
      if (head->status != 200) return fail(s, "status " + std::to_string(head->status));
      s.decoder = BodyDecoder(*head, "GET");
      s.in.erase(0, end + 4);
      s.state = SseStream::State::kBody;
    }
    const long used = s.decoder.feed(s.in, [&](std::string_view d) { on_body(s, d); });
    if (used < 0) return fail(s, "bad body framing");
    s.in.erase(0, static_cast<size_t>(used));
    if (s.decoder.done()) done(s);
  }

  std::vector<SseStream> streams_;
  std::vector<pollfd> pfds_;
  std::vector<size_t> index_;
};

}  // namespace

TEST_CASE("streams: thousands of concurrent SSE streams on a few threads, a GET still prompt") {
  const int n = stream_count();
  REQUIRE(raise_fd_limit(3L * n + 1024) >= 2L * n + 256);
  // The mock serves a connection per thread: start them all up front. Each stream sends its
  // first event, then holds until /release: all of them are open at the same moment however
  // long the burst of connections takes to be served.
  MockUpstream mock(nullptr, {"--threads", std::to_string(n + 64)});
  Proxy proxy(
      "server: {host: \"127.0.0.1\", port: 0, upstream_timeout: \"60s\", threads: 2}\n"
      "logging: {console: false, server_url: \"http://127.0.0.1:9\", default: false}\n"
      "routes:\n  mock: {pattern: \"/mock/\", destination: \"http://127.0.0.1:" +
      std::to_string(mock.http_port()) + "/\"}\n");
  const long rss_idle_kb = proxy.process().rss_kb();

  const auto t0 = Clock::now();
  StreamSet set(proxy.port(), n, "/mock/sse?n=3&ms=100&first_ms=0&hold=1");
  // Open = the head and the first event came through the proxy.
  const auto open_now = [&] {
    return std::count_if(set.streams().begin(), set.streams().end(), [](const SseStream& s) {
      return s.state == SseStream::State::kBody && s.events >= 1;
    });
  };
  const auto head_deadline = Clock::now() + 120s;
  while (Clock::now() < head_deadline && open_now() + set.finished() < static_cast<long>(n)) {
    set.pump(50ms);
  }
  const double heads_ms = ms_since(t0);
  const long open = open_now();
  const long threads = proxy.process().threads();
  const long rss_kb = proxy.process().rss_kb();

  // A plain request beside the open streams.
  const auto t_get = Clock::now();
  RawConn g(proxy.port());
  auto plain = g.exchange(make_request("GET", "/mock/echo?beside=1", proxy.port()), "GET", 5000ms);
  const double get_ms = ms_since(t_get);

  MESSAGE(n << " streams: all open in " << heads_ms << " ms, " << open << " open at once; proxy "
            << threads << " threads, RSS " << rss_kb / 1024.0 << " MiB (idle "
            << rss_idle_kb / 1024.0 << " MiB, "
            << (rss_kb - rss_idle_kb) * 1024.0 / std::max(1L, open) / 1024.0
            << " KiB per stream); plain GET " << (plain ? plain->status() : 0) << " in " << get_ms
            << " ms");

  REQUIRE(http_get(mock.http_port(), "/release").status() == 200);
  const auto done_deadline = Clock::now() + 60s;
  while (Clock::now() < done_deadline && set.finished() < n) set.pump(100ms);
  std::map<std::string, int> problems;
  long complete = 0;
  for (const auto& s : set.streams()) {
    if (s.state == SseStream::State::kDone && s.events == 3) {
      ++complete;
    } else {
      problems[s.state == SseStream::State::kFailed ? s.error
                                                    : std::to_string(s.events) + " events"]++;
    }
  }
  for (const auto& [what, count] : problems) MESSAGE(count << " streams: " << what);
  if (!problems.empty()) MESSAGE("proxy output:\n" << proxy.process().output_tail(30));

  CHECK(open == n);
  // Two event loops plus the main, signal, shipper and console threads; thread-per-connection
  // would be in the thousands.
  CHECK(threads <= 16);
  REQUIRE(plain);
  CHECK(plain->status() == 200);
  CHECK(get_ms < 1000);
  CHECK(complete == n);
}
