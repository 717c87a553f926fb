// Upstream proxies end to end: UpstreamConnection opened through mock_proxies (SOCKS5 and HTTP
// CONNECT, with and without credentials) to mock_upstream, plain and TLS, then a real request
// through the tunnel; and the failures a route would report: wrong or missing credentials, the
// proxy down, the target refused, a proxy that never answers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "proxy/asio_base.h"
#include "proxy/upstream_connection.h"
#include "proxy/upstream_proxy.h"
#include "tests/e2e/harness.h"

namespace {

using namespace e2e;

struct Outcome {
  bool opened = false;
  std::string error;
  std::string response;  // everything the target sent until it closed
};

// A free function, not a lambda: a coroutine lambda's captures die with the temporary closure.
lp::awaitable<void> fetch_echo(const lp::Endpoint& endpoint, lp::Deadline deadline, Outcome* out) {
  lp::UpstreamConnection conn(co_await lp::asio::this_coro::executor, endpoint);
  const bool opened = co_await conn.open(deadline, &out->error);
  out->opened = opened;
  if (!opened) co_return;
  const std::string request =
      "GET /echo HTTP/1.1\r\nHost: " + endpoint.host + "\r\nConnection: close\r\n\r\n";
  const lp::IoResult w = co_await conn.write_all(request, deadline);
  if (!w.ok()) {
    out->error = "write: " + w.error;
    co_return;
  }
  while (true) {
    const lp::ReadResult r = co_await conn.read_some(64 * 1024, deadline);
    if (!r.io.ok()) break;
    out->response.append(r.data);
  }
}

Outcome fetch(const lp::Endpoint& endpoint, Ms timeout = 5000ms) {
  lp::asio::io_context io;
  Outcome out;
  lp::asio::co_spawn(io, fetch_echo(endpoint, lp::Clock::now() + timeout, &out),
                     lp::asio::detached);
  io.run();
  return out;
}

lp::UpstreamProxy proxy(const std::string& url) {
  std::string error;
  std::optional<lp::UpstreamProxy> p = lp::parse_upstream_proxy(url, &error);
  REQUIRE_MESSAGE(p, error);
  return *p;
}

class MockProxy {
 public:
  MockProxy(bool socks, std::vector<std::string> args = {}) {
    args.insert(args.begin(), socks ? "--socks5" : "--http-connect");
    proc_ = std::make_unique<ChildProcess>(bin_dir() + "/mock_proxies", args,
                                           ChildOptions{{}, "", socks ? "socks5" : "connect"});
    auto m = proc_->wait_for_line(std::regex(R"(mock_proxies (socks5|connect)=(\d+))"), 10000ms);
    port_ = std::stoi(m[2]);
  }
  int port() const { return port_; }
  ChildProcess& process() { return *proc_; }

 private:
  std::unique_ptr<ChildProcess> proc_;
  int port_ = 0;
};

// A listener that never accepts: the kernel completes the TCP handshake, nobody ever answers.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd_, 8) == 0);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

std::string p(int port) {
  return std::to_string(port);
}

TEST_CASE("requests go through SOCKS5 and CONNECT proxies, plain and TLS") {
  const TestCert& cert = shared_test_cert();
  MockUpstream mock(&cert);
  std::string error;
  auto tls = lp::TlsClientContext::create(cert.ca_pem, true, &error);
  REQUIRE_MESSAGE(tls, error);
  MockProxy socks(true), connect(false);
  MockProxy socks_auth(true, {"--user", "alice", "--password", "s3cret:x"});
  MockProxy connect_auth(false, {"--user", "alice", "--password", "s3cret:x"});

  struct Case {
    std::string proxy_url;
    MockProxy* proxy;
    std::string host;
    bool use_tls;
  };
  const std::string sp = p(socks.port()), cp = p(connect.port());
  const std::vector<Case> cases = {
      {"socks5://127.0.0.1:" + sp, &socks, "127.0.0.1", false},
      {"socks5h://127.0.0.1:" + sp, &socks, "localhost", false},
      {"socks5h://127.0.0.1:" + sp, &socks, "localhost", true},
      {"socks5://alice:s3cret%3Ax@127.0.0.1:" + p(socks_auth.port()), &socks_auth, "127.0.0.1",
       true},
      {"http://127.0.0.1:" + cp, &connect, "127.0.0.1", false},
      {"http://127.0.0.1:" + cp, &connect, "localhost", true},
      {"http://alice:s3cret%3Ax@127.0.0.1:" + p(connect_auth.port()), &connect_auth, "localhost",
       true},
  };
  for (const Case& c : cases) {
    CAPTURE(c.proxy_url);
    CAPTURE(c.host);
    CAPTURE(c.use_tls);
    const lp::UpstreamProxy up = proxy(c.proxy_url);
    lp::Endpoint endpoint;
    endpoint.host = c.host;
    endpoint.port = static_cast<uint16_t>(c.use_tls ? mock.https_port() : mock.http_port());
    endpoint.tls = c.use_tls ? tls.get() : nullptr;
    endpoint.proxy = &up;
    const size_t lines_before = c.proxy->process().line_count();
    const Outcome out = fetch(endpoint);
    REQUIRE_MESSAGE(out.opened, out.error);
    CHECK_MESSAGE(out.response.starts_with("HTTP/1.1 200 "), out.response);
    CHECK(out.response.find(c.use_tls ? "\"tls\":true" : "\"tls\":false") != std::string::npos);
    const std::string tunnel = "tunnel " + c.host + ":" + p(endpoint.port);
    c.proxy->process().wait_for_line(std::regex(tunnel), 5000ms, lines_before);
  }

  // The same endpoint without a proxy still connects directly.
  lp::Endpoint direct;
  direct.host = "127.0.0.1";
  direct.port = static_cast<uint16_t>(mock.http_port());
  const size_t socks_lines = socks.process().line_count();
  const Outcome out = fetch(direct);
  REQUIRE_MESSAGE(out.opened, out.error);
  CHECK(out.response.starts_with("HTTP/1.1 200 "));
  CHECK(socks.process().line_count() == socks_lines);
}

TEST_CASE("proxy failures name the proxy and never its password") {
  MockUpstream mock;
  MockProxy socks(true);
  MockProxy socks_auth(true, {"--user", "alice", "--password", "s3cret"});
  MockProxy connect(false);
  MockProxy connect_auth(false, {"--user", "alice", "--password", "s3cret"});
  SilentListener silent;
  const int down = unused_port();
  const int dead = unused_port();
  const std::string sa = p(socks_auth.port()), ca = p(connect_auth.port());

  struct Case {
    std::string proxy_url;
    int target_port;
    std::string error;  // the whole error starts with this
  };
  const std::vector<Case> cases = {
      {"socks5://alice:wrong-pass@127.0.0.1:" + sa, mock.http_port(),
       "upstream proxy socks5://alice:***@127.0.0.1:" + sa +
           ": authentication failed (the proxy rejected the user name or password)"},
      {"socks5://127.0.0.1:" + sa, mock.http_port(),
       "upstream proxy socks5://127.0.0.1:" + sa + ": proxy accepts no unauthenticated clients"},
      {"http://alice:wrong-pass@127.0.0.1:" + ca, mock.http_port(),
       "upstream proxy http://alice:***@127.0.0.1:" + ca + ": CONNECT 127.0.0.1:" +
           p(mock.http_port()) + ": proxy rejected credentials (407 Proxy Authentication"},
      {"http://127.0.0.1:" + ca, mock.http_port(),
       "upstream proxy http://127.0.0.1:" + ca + ": CONNECT 127.0.0.1:" + p(mock.http_port()) +
           ": proxy requires credentials (407"},
      {"socks5://alice:wrong-pass@127.0.0.1:" + p(down), mock.http_port(),
       "upstream proxy socks5://alice:***@127.0.0.1:" + p(down) +
           ": connect to 127.0.0.1:" + p(down) + ": Connection refused"},
      {"http://127.0.0.1:" + p(down), mock.http_port(),
       "upstream proxy http://127.0.0.1:" + p(down) + ": connect to 127.0.0.1:" + p(down) +
           ": Connection refused"},
      {"socks5://127.0.0.1:" + p(socks.port()), dead,
       "upstream proxy socks5://127.0.0.1:" + p(socks.port()) +
           ": cannot reach 127.0.0.1:" + p(dead) + ": connection refused by destination host"},
      {"http://127.0.0.1:" + p(connect.port()), dead,
       "upstream proxy http://127.0.0.1:" + p(connect.port()) + ": CONNECT 127.0.0.1:" + p(dead) +
           ": proxy answered CONNECT with 502 Bad Gateway"},
      {"socks5h://u:wrong-pass@127.0.0.1:" + p(silent.port()), mock.http_port(),
       "upstream proxy socks5h://u:***@127.0.0.1:" + p(silent.port()) +
           ": timed out during the SOCKS5 greeting"},
      {"http://127.0.0.1:" + p(silent.port()), mock.http_port(),
       "upstream proxy http://127.0.0.1:" + p(silent.port()) + ": timed out during the CONNECT"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.proxy_url);
    const lp::UpstreamProxy up = proxy(c.proxy_url);
    lp::Endpoint endpoint;
    endpoint.host = "127.0.0.1";
    endpoint.port = static_cast<uint16_t>(c.target_port);
    endpoint.proxy = &up;
    const Outcome out = fetch(endpoint, 1000ms);
    CHECK_FALSE(out.opened);
    CHECK_MESSAGE(out.error.starts_with(c.error), out.error);
    CHECK(out.error.find("wrong-pass") == std::string::npos);
  }
  socks.process().wait_for_line(std::regex("refused 127.0.0.1:" + p(dead)), 5000ms);
  socks_auth.process().wait_for_line(std::regex("auth failed"), 5000ms);
}

}  // namespace
