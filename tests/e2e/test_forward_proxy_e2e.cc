// The forward proxy end to end: curl through `logging-proxy` with forward_proxy enabled, in
// front of the HTTPS mock (its own test CA, trusted by the proxy through a route's ca_file) and
// a real log server. Absolute-form http requests, intercepted CONNECTs (the client trusts the
// proxy's CA; answers and SSE streams arrive, incrementally, and are captured byte-exact),
// blind tunnels for other hosts (the client sees the mock's own certificate), Proxy-
// Authorization, and hostile CONNECTs: odd targets, TLS garbage, a silent client, an SNI that
// names another host. The CA key never reaches the log server's disk.
#include <doctest/doctest.h>
#include <httplib.h>
#include <sys/socket.h>

#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

using namespace e2e;
namespace fs = std::filesystem;

namespace {

// A command's exit code and its output (stdout and stderr, lines joined).
struct Run {
  int code = -1;
  std::string out;
};

Run run(const std::vector<std::string>& argv,
        std::vector<std::pair<std::string, std::string>> env = {}, Ms timeout = 20000ms) {
  ChildProcess p(argv[0], std::vector<std::string>(argv.begin() + 1, argv.end()),
                 ChildOptions{std::move(env), {}, argv[0]});
  p.close_stdin();
  Run r;
  if (!p.wait_exit(timeout)) {
    p.terminate(1000ms);
    r.out = "(timed out) " + p.output_tail();
    return r;
  }
  r.code = p.exit_code().value_or(-1);
  for (const auto& line : p.lines()) r.out += line + "\n";
  return r;
}

std::string base64(std::string_view in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += k[(v >> s) & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

struct Setup {
  MockUpstream mock{&shared_test_cert()};
  TempDir dir;
  std::unique_ptr<LogServerProc> ls;
  std::unique_ptr<Proxy> proxy;
  std::string ca_pem;      // the proxy's CA certificate
  std::string last_error;  // of the log server's API, for messages

  explicit Setup(const std::string& forward_extra = "", const std::string& server_extra = "") {
    write_file(dir.file("log-server.yaml"), log_server_yaml(dir.file("data")));
    ls = std::make_unique<LogServerProc>(dir.file("log-server.yaml"));
    const std::string https = std::to_string(mock.https_port());
    proxy = std::make_unique<Proxy>(
        "server: {host: \"127.0.0.1\", port: 0" + server_extra +
        "}\n"
        "logging: {server_url: \"" +
        ls->url() +
        "\", default: true, spool_dir: spool, batch_interval: 50ms}\n"
        "forward_proxy: {enabled: true, intercept: [\"127.0.0.1\"], ca_dir: ca" +
        forward_extra +
        "}\n"
        "routes:\n"
        "  mocktls: {pattern: \"/mocktls/\", destination: \"https://127.0.0.1:" +
        https + "/\", ca_file: \"" + shared_test_cert().ca_pem + "\"}\n");
    ca_pem = fs::path(proxy->config_path()).parent_path() / "ca" / "ca.pem";
    REQUIRE(fs::exists(ca_pem));
  }
  std::string proxy_url() const { return "http://127.0.0.1:" + std::to_string(proxy->port()); }

  // Rows of /requests matching `query`, once `pred` holds (or the last seen).
  std::vector<json> await_rows(const std::string& query,
                               const std::function<bool(const std::vector<json>&)>& pred) {
    httplib::Client c("127.0.0.1", ls->port());
    std::vector<json> rows;
    await_cond(
        [&] {
          auto r = c.Get("/requests?limit=1000&" + query);
          if (!r || r->status != 200) {
            last_error = r ? std::to_string(r->status) + " " + r->body : "no answer";
            return false;
          }
          rows.clear();
          const json page = json::parse(r->body);
          for (const auto& row : page["requests"]) rows.push_back(row);
          return pred(rows) && std::all_of(rows.begin(), rows.end(), [](const json& row) {
                   return row.value("outcome", "") != "in_progress";
                 });
        },
        20000ms, 50ms);
    return rows;
  }
  std::string raw(const std::string& id, const std::string& which) {
    httplib::Client c("127.0.0.1", ls->port());
    auto r = c.Get("/requests/" + id + "/" + which);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return r->body;
  }
};

// The file's bytes so far; "" before curl created it.
std::string read_so_far(const std::string& path) {
  return fs::exists(path) ? read_file(path) : std::string();
}

// The head of the answer to `request` on a fresh connection.
ResponseHead head_of(int port, const std::string& request) {
  RawConn conn(port);
  REQUIRE(conn.send_all(request));
  auto head = conn.read_head(5000ms);
  REQUIRE(head);
  return *head;
}

std::string body_of(const std::string& message) {
  const size_t end = message.find("\r\n\r\n");
  return end == std::string::npos ? "" : message.substr(end + 4);
}

}  // namespace

TEST_CASE(
    "forward proxy: absolute-form http, intercepted https (SSE incremental), blind tunnel, all "
    "captured") {
  Setup s;
  const std::string tag = "fwd" + std::to_string(now_us());
  const std::string http = std::to_string(s.mock.http_port());
  const std::string https = std::to_string(s.mock.https_port());

  // 1. Absolute-form http: forwarded to its host.
  const std::string abs_url = "http://127.0.0.1:" + http + "/echo?tag=" + tag + "-abs";
  Run abs = run({"curl", "-sS", "--max-time", "10", "-x", s.proxy_url(), abs_url});
  INFO(abs.out);
  REQUIRE(abs.code == 0);
  json echo = json::parse(abs.out);
  CHECK(echo["path"] == "/echo");
  CHECK(echo["tls"] == false);

  // 2. Intercepted: the client trusts only the proxy's CA, and the answer comes from the mock.
  const std::string tls_url = "https://127.0.0.1:" + https + "/echo?tag=" + tag + "-tls";
  Run tls =
      run({"curl", "-sS", "--max-time", "10", "-x", s.proxy_url(), "--cacert", s.ca_pem, tls_url});
  INFO(tls.out);
  REQUIRE(tls.code == 0);
  json tls_echo = json::parse(tls.out);
  CHECK(tls_echo["tls"] == true);
  bool https_proto = false;
  for (const auto& h : tls_echo["headers"]) {
    https_proto |= h[0] == "X-Forwarded-Proto" && h[1] == "https";
  }
  CHECK(https_proto);

  // The same through the environment, as a tool that only honours https_proxy is configured.
  Run env = run({"curl", "-sS", "--max-time", "10", "--cacert", s.ca_pem, tls_url + "-env"},
                {{"https_proxy", s.proxy_url()}, {"no_proxy", ""}, {"NO_PROXY", ""}});
  INFO(env.out);
  CHECK(env.code == 0);

  // 3. An intercepted SSE stream arrives event by event: the first event is through while the
  // mock still holds the rest.
  const std::string out_file = s.dir.file("sse.out");
  const std::string sse_url = "https://127.0.0.1:" + https + "/sse?n=3&ms=10&hold=1&tag=" + tag;
  {
    ChildProcess curl("curl",
                      {"-sS", "-N", "--max-time", "20", "-x", s.proxy_url(), "--cacert", s.ca_pem,
                       "-o", out_file, "-w", "done %{http_code}\n", sse_url},
                      ChildOptions{{}, {}, "curl-sse"});
    const bool first = await_cond(
        [&] { return read_so_far(out_file).find("data: {\"i\":0") != std::string::npos; }, 10000ms);
    CHECK_MESSAGE(first, "the first event did not come through while the stream was held");
    CHECK(read_so_far(out_file).find("\"i\":1") == std::string::npos);
    CHECK(http_get(s.mock.http_port(), "/release").status() == 200);
    curl.wait_for_line(std::regex("done 200"), 10000ms);
  }
  const std::string streamed = read_file(out_file);
  CHECK(streamed.find("\"i\":2") != std::string::npos);

  // 4. Not intercepted (localhost is not listed): a blind tunnel, the mock's own certificate.
  Run tunnel = run({"curl", "-sS", "--max-time", "10", "-x", s.proxy_url(), "--cacert",
                    shared_test_cert().ca_pem, "https://localhost:" + https + "/echo?tunnel=1"});
  INFO(tunnel.out);
  CHECK(tunnel.code == 0);
  CHECK(tunnel.out.find("\"tls\":true") != std::string::npos);
  // The proxy's CA is not what the tunnelled host presents.
  Run wrong_ca = run({"curl", "-sS", "--max-time", "10", "-x", s.proxy_url(), "--cacert", s.ca_pem,
                      "https://localhost:" + https + "/echo"});
  CHECK(wrong_ca.code != 0);

  // The captures: absolute URLs as X-Proxy-Path, the intercepted stream byte-exact.
  auto rows = s.await_rows("q=" + tag, [](const std::vector<json>& r) { return r.size() >= 4; });
  INFO(s.proxy->process().output_tail());
  INFO(s.ls->process().output_tail());
  INFO(s.last_error);
  REQUIRE(rows.size() == 4);
  std::map<std::string, json> by_path;
  for (const auto& r : rows) by_path[r["proxy_path"]] = r;
  REQUIRE(by_path.count(abs_url));
  CHECK(by_path[abs_url]["route"] == "forward:127.0.0.1:" + http);
  CHECK(by_path[abs_url]["status"] == 200);
  REQUIRE(by_path.count(tls_url));
  CHECK(by_path.count(tls_url + "-env"));
  CHECK(by_path[tls_url]["route"] == "mocktls");  // the configured route to that origin
  REQUIRE(by_path.count(sse_url));
  const json& sse = by_path[sse_url];
  CHECK(sse["outcome"] == "complete");
  CHECK(body_of(s.raw(sse["id"], "response")) == streamed);
  const std::string request = s.raw(sse["id"], "request");
  CHECK(request.find("X-Proxy-Path: " + sse_url + "\r\n") != std::string::npos);

  // An intercepted capture replays: its absolute X-Proxy-Path goes to the proxy as it is.
  {
    const std::string id = by_path[tls_url]["id"];
    ChildProcess replay(bin_dir() + "/logging-proxy",
                        {"replay", id.substr(0, 8), "--config", s.proxy->config_path(), "--to",
                         s.proxy_url(), "--from", s.ls->url()},
                        ChildOptions{{{"LOG_SERVER_TOKEN", ""}}, "", "replay"});
    REQUIRE(replay.wait_exit(30000ms));
    INFO(replay.output_tail());
    CHECK(replay.exit_code() == 0);
    auto replayed =
        s.await_rows("replay_of=" + id, [](const std::vector<json>& r) { return !r.empty(); });
    REQUIRE(replayed.size() == 1);
    CHECK(replayed[0]["proxy_path"] == tls_url);
    CHECK(replayed[0]["status"] == 200);
  }

  // The tunnels are metadata rows: host, bytes, outcome.
  auto tunnels =
      s.await_rows("method=CONNECT", [](const std::vector<json>& r) { return r.size() >= 2; });
  CHECK(tunnels.size() == 2);
  for (const auto& t : tunnels) {
    CHECK(t["route"] == "tunnel");
    CHECK(t["proxy_path"] == "localhost:" + https);
    CHECK(t["status"] == 200);
  }

  // The CA key never reaches the log server's disk (nor the proxy's output).
  const std::string key = read_file(fs::path(s.ca_pem).parent_path() / "ca.key");
  std::smatch m;
  REQUIRE(std::regex_search(key, m, std::regex("-----\\n([A-Za-z0-9+/=]{40})")));
  const std::string needle = m[1];
  for (const auto& e : fs::recursive_directory_iterator(s.dir.file("data"))) {
    if (!e.is_regular_file()) continue;
    CHECK_MESSAGE(read_file(e.path()).find(needle) == std::string::npos,
                  "the CA key is in " << e.path());
  }
  CHECK(s.proxy->process().output_tail(1000).find(needle) == std::string::npos);
}

TEST_CASE("forward proxy: Proxy-Authorization Basic, 407 with a challenge otherwise") {
  const std::string hash = sha256_hex("s3cret");
  Setup s(", users: [{name: alice, password_sha256: \"" + hash + "\"}]");
  const int port = s.proxy->port();
  const std::string target = "http://127.0.0.1:" + std::to_string(s.mock.http_port()) + "/echo";
  struct Case {
    const char* name;
    std::string request;
    int status;
  };
  const std::string good = "Proxy-Authorization: Basic " + base64("alice:s3cret") + "\r\n";
  const std::string bad = "Proxy-Authorization: Basic " + base64("alice:wrong") + "\r\n";
  const std::vector<Case> cases = {
      {"GET without credentials", "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n", 407},
      {"GET with the wrong password", "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + bad + "\r\n",
       407},
      {"GET with credentials", "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + good + "\r\n", 200},
      {"CONNECT without credentials", "CONNECT localhost:443 HTTP/1.1\r\n\r\n", 407},
      {"CONNECT with another scheme",
       "CONNECT localhost:443 HTTP/1.1\r\nProxy-Authorization: "
       "Bearer abc\r\n\r\n",
       407},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    const ResponseHead head = head_of(port, c.request);
    CHECK(head.status == c.status);
    if (c.status == 407) CHECK(head.get("Proxy-Authenticate").find("Basic realm=") == 0);
  }
  // curl with --proxy-user through an intercepted CONNECT.
  Run ok = run({"curl", "-sS", "--max-time", "10", "-x", s.proxy_url(), "--proxy-user",
                "alice:s3cret", "--cacert", s.ca_pem,
                "https://127.0.0.1:" + std::to_string(s.mock.https_port()) + "/echo"});
  INFO(ok.out);
  CHECK(ok.code == 0);
  // The credential is masked in the capture and never sent upstream.
  CHECK(ok.out.find("Proxy-Authorization") == std::string::npos);
}

TEST_CASE("forward proxy: hostile CONNECTs are refused and the proxy carries on") {
  Setup s("", ", header_timeout: 1s");
  const int port = s.proxy->port();
  const std::string https = std::to_string(s.mock.https_port());
  struct Case {
    const char* name;
    std::string request;
    int status;
  };
  const std::vector<Case> cases = {
      {"port 0", "CONNECT 127.0.0.1:0 HTTP/1.1\r\n\r\n", 400},
      {"no port", "CONNECT localhost HTTP/1.1\r\n\r\n", 400},
      {"port out of range", "CONNECT localhost:99999 HTTP/1.1\r\n\r\n", 400},
      {"a 2 KB host name", "CONNECT " + std::string(2048, 'a') + ":443 HTTP/1.1\r\n\r\n", 400},
      {"empty label", "CONNECT a..b:443 HTTP/1.1\r\n\r\n", 400},
      {"userinfo", "CONNECT user@localhost:443 HTTP/1.1\r\n\r\n", 400},
      {"unterminated IPv6", "CONNECT [::1:443 HTTP/1.1\r\n\r\n", 400},
      {"CRLF in the target", "CONNECT local\rhost:443 HTTP/1.1\r\n\r\n", 400},
      {"ftp absolute-form", "GET ftp://localhost/ HTTP/1.1\r\nHost: localhost\r\n\r\n", 400},
      {"absolute-form with userinfo", "GET http://u:p@localhost/ HTTP/1.1\r\nHost: l\r\n\r\n", 400},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    CHECK(head_of(port, c.request).status == c.status);
  }
  // An IP literal and a refused port: a 502.
  const std::string refused = "CONNECT 127.0.0.2:" + std::to_string(unused_port()) + " HTTP/1.1";
  CHECK(head_of(port, refused + "\r\n\r\n").status == 502);
  // TLS garbage after an intercepted CONNECT: the connection is closed.
  {
    RawConn conn(port);
    REQUIRE(conn.send_all("CONNECT 127.0.0.1:" + https + " HTTP/1.1\r\n\r\n"));
    auto head = conn.read_head(5000ms);
    REQUIRE(head);
    CHECK(head->status == 200);
    conn.consume(head->raw_size);
    REQUIRE(conn.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(100, '\x16')));
    CHECK(conn.wait_closed(5000ms));
  }
  // A client that never sends its ClientHello: closed after header_timeout (1 s).
  {
    RawConn conn(port);
    REQUIRE(conn.send_all("CONNECT 127.0.0.1:" + https + " HTTP/1.1\r\n\r\n"));
    auto head = conn.read_head(5000ms);
    REQUIRE(head);
    const auto t0 = Clock::now();
    CHECK(conn.wait_closed(10000ms));
    MESSAGE("a silent client after CONNECT closed after " << ms_since(t0) << " ms");
    CHECK(ms_since(t0) >= 900);
  }
  // An SNI that names another host than the CONNECT: refused.
  Run sni = run({"curl", "-sS", "--max-time", "10", "-x", s.proxy_url(), "--cacert", s.ca_pem,
                 "--connect-to", "evil.example:" + https + ":127.0.0.1:" + https,
                 "https://evil.example:" + https + "/echo"});
  INFO(sni.out);
  CHECK(sni.code != 0);
  CHECK(s.proxy->process().find_line(std::regex("TLS handshake with the client failed"), 2000ms));
  // Still serving.
  Run ok = run({"curl", "-sS", "--max-time", "10", "-x", s.proxy_url(), "--cacert", s.ca_pem,
                "https://127.0.0.1:" + https + "/echo"});
  CHECK(ok.code == 0);
  CHECK(s.proxy->process().running());
}

// --- upstream proxies
// -----------------------------------------------------------------------------

namespace {

// tests/e2e/mock_proxies: a SOCKS5 or HTTP CONNECT proxy on 127.0.0.1, one line per tunnel.
struct MockProxy {
  std::unique_ptr<ChildProcess> proc;
  int port = 0;
  MockProxy(const std::string& kind, const std::string& user = "",
            const std::string& password = "") {
    std::vector<std::string> args = {"--" + kind};
    if (!user.empty()) args.insert(args.end(), {"--user", user, "--password", password});
    proc = std::make_unique<ChildProcess>(bin_dir() + "/mock_proxies", args,
                                          ChildOptions{{}, {}, kind});
    port = std::stoi(
        proc->wait_for_line(std::regex(R"(mock_proxies (socks5|connect)=(\d+))"), 10000ms)[2]);
  }
};

}  // namespace

TEST_CASE(
    "upstream proxies: routes through SOCKS5 and HTTP CONNECT, with credentials, per route and "
    "server-wide - failures name the proxy") {
  MockUpstream mock{&shared_test_cert()};
  MockProxy socks("socks5");
  MockProxy connect("http-connect", "bob", "pa:ss");
  const int dead = unused_port();
  const std::string mock_http = "http://127.0.0.1:" + std::to_string(mock.http_port()) + "/";
  const std::string mock_https = "https://127.0.0.1:" + std::to_string(mock.https_port()) + "/";
  const std::string ca = shared_test_cert().ca_pem;
  Proxy proxy("server: {host: \"127.0.0.1\", port: 0, upstream_proxy: \"socks5://127.0.0.1:" +
              std::to_string(socks.port) + "\", no_proxy: [\"localhost\"]}\n" +
              "logging: {default: false}\n"
              "routes:\n"
              "  viasocks: {pattern: \"/socks/\", destination: \"" +
              mock_https + "\", ca_file: \"" + ca +
              "\"}\n"
              "  viaconnect: {pattern: \"/connect/\", destination: \"" +
              mock_http +
              "\", upstream_proxy: \"http://bob:pa%3Ass@127.0.0.1:" + std::to_string(connect.port) +
              "\"}\n"
              "  badcreds: {pattern: \"/badcreds/\", destination: \"" +
              mock_http +
              "\", upstream_proxy: \"http://bob:wrong@127.0.0.1:" + std::to_string(connect.port) +
              "\"}\n"
              "  deadproxy: {pattern: \"/dead/\", destination: \"" +
              mock_http + "\", upstream_proxy: \"socks5://127.0.0.1:" + std::to_string(dead) +
              "\"}\n"
              "  direct: {pattern: \"/direct/\", destination: \"" +
              mock_http +
              "\", upstream_proxy: none}\n"
              "  nop: {pattern: \"/nop/\", destination: \"http://localhost:" +
              std::to_string(mock.http_port()) + "/\"}\n");
  const int port = proxy.port();
  struct Case {
    const char* path;
    int status;
    ChildProcess* tunnel_via;  // whose output names the tunnel; nullptr: none expected
    const char* error;         // in the 502 body
  };
  const std::vector<Case> cases = {
      {"/socks/echo?n=1", 200, socks.proc.get(), ""},
      {"/connect/echo?n=2", 200, connect.proc.get(), ""},
      {"/badcreds/echo", 502, nullptr, "proxy rejected credentials"},
      {"/dead/echo", 502, nullptr, "upstream proxy socks5://127.0.0.1:"},
      {"/direct/echo", 200, nullptr, ""},
      {"/nop/echo", 200, nullptr, ""},  // server.no_proxy: localhost
  };
  for (const Case& c : cases) {
    INFO(c.path);
    const size_t socks_lines = socks.proc->line_count();
    const size_t connect_lines = connect.proc->line_count();
    HttpResponse r = http_get(port, c.path);
    CHECK(r.status() == c.status);
    if (*c.error) {
      CHECK(r.body.find(c.error) != std::string::npos);
      CHECK(r.body.find("wrong") == std::string::npos);  // never the password
    }
    if (c.tunnel_via) {
      CHECK(
          c.tunnel_via->find_line(std::regex("tunnel 127.0.0.1:"), 2000ms,
                                  c.tunnel_via == socks.proc.get() ? socks_lines : connect_lines));
    } else if (c.status == 200) {
      CHECK(socks.proc->line_count() == socks_lines);
      CHECK(connect.proc->line_count() == connect_lines);
    }
  }
}
