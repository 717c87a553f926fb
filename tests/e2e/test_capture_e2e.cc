// End-to-end tests of the capture pipeline: a real logging-proxy in front of the real mock
// upstream, shipping its captures to a real log-server process, and what arrives checked through
// the log server's files and query API.
//
// Each TEST_CASE starts its own processes, all on 127.0.0.1, with everything on disk (the log
// server's data_dir, the proxy's spool_dir, the config files) in the test's TempDir:
//   - log-server with `log_server: {host: 127.0.0.1, port: 0 (or a fixed port), data_dir: ...}`,
//     started first; its printed port goes into the proxy's logging.server_url;
//   - logging-proxy with routes mock (/mock/ -> the mock) and quiet (/quiet/ -> the mock,
//     logging: false), logging.spool_dir inside the TempDir and batch_interval 50ms.
// Nothing sleeps to synchronise: arrivals are awaited by polling /requests with a deadline.
// Measured figures are logged with MESSAGE; the asserted bounds are deliberately generous.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include <doctest/doctest.h>
#include <httplib.h>

#include "tests/e2e/harness.h"

using namespace e2e;
namespace fs = std::filesystem;

namespace {

const std::string kSecret = "sk-test-1234567890abcdefWXYZ";
const std::string kSecretCore = "1234567890abcdef";  // must not survive anywhere either

// A tag unique to this run and call: letters, digits and '-' only (used unencoded in ?q=).
std::string run_tag(const std::string& what) {
  static std::atomic<int> counter{0};
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s-%x-%llx-%d", what.c_str(), static_cast<unsigned>(::getpid()),
                static_cast<unsigned long long>(now_us() & 0xffffffffULL), counter++);
  return buf;
}

// --- configs ------------------------------------------------------------------------------------

struct ProxyCfg {
  int mock_port = 0;
  std::string server_url;
  std::string spool_dir;
  std::string logging_extra;  // more `logging:` keys
  std::string batch_interval = "50ms";
};

// `server_extra`: more `server:` keys.
std::string proxy_yaml(const ProxyCfg& c, const std::string& server_extra = "") {
  const std::string mock = "http://127.0.0.1:" + std::to_string(c.mock_port) + "/";
  std::string y;
  y += "server: {host: \"127.0.0.1\", port: 0, upstream_timeout: \"10s\"" +
       (server_extra.empty() ? "" : ", " + server_extra) + "}\n";
  y += "logging: {console: true, server_url: \"" + c.server_url +
       "\", default: true, spool_dir: \"" + c.spool_dir +
       "\", batch_interval: " + c.batch_interval +
       (c.logging_extra.empty() ? "" : ", " + c.logging_extra) + "}\n";
  y += "routes:\n";
  y += "  mock: {pattern: \"/mock/\", destination: \"" + mock + "\"}\n";
  y += "  quiet: {pattern: \"/quiet/\", destination: \"" + mock + "\", logging: false}\n";
  return y;
}

// --- the log server's query API -----------------------------------------------------------------

class Api {
 public:
  explicit Api(int port, const std::string& token = "") : c_("127.0.0.1", port) {
    c_.set_keep_alive(true);
    c_.set_connection_timeout(2, 0);
    c_.set_read_timeout(20, 0);
    if (!token.empty()) c_.set_bearer_token_auth(token.c_str());
  }

  // nullopt on a transport error (e.g. the server is stopped or restarting).
  std::optional<httplib::Response> get(const std::string& path) {
    auto r = c_.Get(path.c_str());
    if (!r) return std::nullopt;
    return *r;
  }

  json get_json(const std::string& path) {
    auto r = get(path);
    REQUIRE_MESSAGE(r, "GET " << path << ": no response");
    INFO("GET " << path << " -> " << r->status << " " << r->body.substr(0, 500));
    REQUIRE(r->status == 200);
    json j = json::parse(r->body, nullptr, false);
    REQUIRE(!j.is_discarded());
    return j;
  }

  std::string get_raw(const std::string& path) {
    auto r = get(path);
    REQUIRE_MESSAGE(r, "GET " << path << ": no response");
    INFO("GET " << path << " -> " << r->status << " " << r->body.substr(0, 500));
    REQUIRE(r->status == 200);
    return r->body;
  }

  // Every row of /requests?QUERY, following next_cursor; nullopt if a page could not be read.
  std::optional<std::vector<json>> list_all(const std::string& query) {
    std::vector<json> rows;
    std::string cursor;
    for (int page = 0; page < 1000; ++page) {
      std::string path = "/requests?limit=1000" + (query.empty() ? "" : "&" + query);
      if (!cursor.empty()) path += "&cursor=" + cursor;
      auto r = get(path);
      if (!r || r->status != 200) return std::nullopt;
      json j = json::parse(r->body, nullptr, false);
      if (j.is_discarded() || !j["requests"].is_array()) return std::nullopt;
      for (auto& row : j["requests"]) rows.push_back(std::move(row));
      if (!j["next_cursor"].is_string()) return rows;
      cursor = j["next_cursor"].get<std::string>();
    }
    return std::nullopt;
  }

 private:
  httplib::Client c_;
};

bool all_finished(const std::vector<json>& rows) {
  return std::all_of(rows.begin(), rows.end(),
                     [](const json& r) { return r.value("outcome", "") != "in_progress"; });
}

// Polls /requests?QUERY (all pages) until pred(rows) holds; returns the last rows and whether it
// held before the deadline.
std::pair<std::vector<json>, bool> await_rows(
    Api& api, const std::string& query, const std::function<bool(const std::vector<json>&)>& pred,
    Ms timeout, Ms interval = 50ms) {
  const auto deadline = Clock::now() + timeout;
  std::vector<json> last;
  for (;;) {
    if (auto rows = api.list_all(query)) {
      last = std::move(*rows);
      if (pred(last)) return {last, true};
    }
    if (Clock::now() >= deadline) return {last, false};
    std::this_thread::sleep_for(interval);  // poll interval, not synchronisation
  }
}

std::map<std::string, std::vector<json>> by_path(const std::vector<json>& rows) {
  std::map<std::string, std::vector<json>> out;
  for (const auto& r : rows) out[r.value("proxy_path", "")].push_back(r);
  return out;
}

// Whether calls /mock/echo?tag=TAG-0 .. TAG-(n-1), made one after another on one connection,
// were each captured exactly once, complete, and ingested in call order (a later call's capture
// cannot have been applied by an earlier batch unless batches were applied out of order).
// Reports the first three problems; counts truncated captures apart.
struct OnceInOrder {
  int truncated = 0;
  int wrong = 0;  // missing, doubled, not complete, or out of order
};
OnceInOrder check_once_in_order(const std::vector<json>& rows, const std::string& tag, int n) {
  auto paths = by_path(rows);
  OnceInOrder r;
  std::string last_ingested;
  for (int k = 0; k < n; ++k) {
    const std::string p = "/mock/echo?tag=" + tag + "-" + std::to_string(k);
    if (paths[p].size() != 1) {
      if (++r.wrong <= 3) CHECK_MESSAGE(false, p << " captured " << paths[p].size() << " times");
      continue;
    }
    const json& row = paths[p][0];
    if (row["outcome"] == "truncated") ++r.truncated;
    if (row["outcome"] != "complete" && ++r.wrong <= 3) {
      CHECK_MESSAGE(row["outcome"] == "complete", row.dump());
    }
    const std::string ingested = row.value("ingested_at", "");
    if (ingested < last_ingested && ++r.wrong <= 3) {
      CHECK_MESSAGE(ingested >= last_ingested,
                    p << " ingested at " << ingested << ", before " << last_ingested);
    }
    last_ingested = std::max(last_ingested, ingested);
  }
  return r;
}

std::string describe_rows(const std::vector<json>& rows, size_t max = 10) {
  std::string s = std::to_string(rows.size()) + " rows";
  for (size_t i = 0; i < rows.size() && i < max; ++i) {
    s += "\n  " + rows[i].value("proxy_path", "?") + " " + rows[i].value("outcome", "?") + " " +
         rows[i]["status"].dump();
  }
  return s;
}

// --- files --------------------------------------------------------------------------------------

// Splits a stored HTTP message into head (through CRLFCRLF) and body.
std::pair<std::string, std::string> split_message(const std::string& m) {
  size_t p = m.find("\r\n\r\n");
  REQUIRE_MESSAGE(p != std::string::npos, "no end of head in stored message: " << m.substr(0, 300));
  return {m.substr(0, p + 4), m.substr(p + 4)};
}

// Files under `dir` (recursively) whose bytes contain `needle`.
std::vector<std::string> files_containing(const std::string& dir, const std::string& needle) {
  std::vector<std::string> hits;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return hits;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    if (read_file(e.path().string()).find(needle) != std::string::npos) {
      hits.push_back(e.path().string());
    }
  }
  return hits;
}

// `rel` must be DAY/DAY_HH-MM-SS.mmm_ID8_KIND.bin, with the day and time those of started_at
// ("2025-09-13T02:11:09.123456Z").
void check_file_name(const std::string& rel, const std::string& started_at, const std::string& id8,
                     const std::string& kind) {
  static const std::regex re(
      R"(^(\d{4}-\d{2}-\d{2})/(\d{4}-\d{2}-\d{2})_(\d{2})-(\d{2})-(\d{2})\.(\d{3})_([0-9a-f]{8})_(request|response)\.bin$)");
  std::smatch m;
  INFO("file " << rel << ", started_at " << started_at);
  REQUIRE(std::regex_match(rel, m, re));
  CHECK(m[1].str() == m[2].str());
  REQUIRE(started_at.size() >= 23);
  CHECK(m[2].str() == started_at.substr(0, 10));
  CHECK(m[3].str() + ":" + m[4].str() + ":" + m[5].str() + "." + m[6].str() ==
        started_at.substr(11, 12));
  CHECK(m[7].str() == id8);
  CHECK(m[8].str() == kind);
}

// A small, distinct, binary request body for load request i.
std::string load_body(int i) {
  std::string b = "req=" + std::to_string(i) + ";";
  std::string rnd(16 + static_cast<size_t>(i * 37) % 240, '\0');
  ByteGenerator(static_cast<uint64_t>(i) * 7919 + 1).fill(rnd.data(), rnd.size());
  return b + rnd;
}

// Sends GET target on `conn` (keep-alive) and returns the response; fails the test without one.
HttpResponse get_on(RawConn& conn, int port, const std::string& target, Ms timeout = 5000ms) {
  auto r = conn.exchange(make_request("GET", target, port), "GET", timeout);
  REQUIRE_MESSAGE(r, "no response to GET " << target);
  REQUIRE_MESSAGE(r->complete, "incomplete response to GET " << target);
  return *r;
}

std::string written(const std::string& path, const std::string& content) {
  write_file(path, content);
  return path;
}

// A mock upstream, a log server and a proxy that captures its routes to the mock, all with
// default settings, in one temporary directory.
struct CaptureStack {
  TempDir dir;
  MockUpstream mock;
  const std::string data = dir.file("data"), spool = dir.file("spool");
  LogServerProc ls{written(dir.file("log-server.yaml"), log_server_yaml(data))};
  ProxyProc proxy{
      written(dir.file("proxy.yaml"), proxy_yaml({mock.http_port(), ls.url(), spool, ""}))};
  const int port = proxy.port();
  Api api{ls.port()};
};

// Undoes a SIGSTOP whatever happens in the test.
struct ContinueOnExit {
  pid_t pid;
  ~ContinueOnExit() { ::kill(pid, SIGCONT); }
};

}  // namespace

TEST_CASE("capture: plain and SSE and gzip exchanges arrive byte-exact in files and the API") {
  CaptureStack stack;
  auto& [dir, mock, data, spool, ls, proxy, port, api] = stack;

  const std::string tag = run_tag("rt");
  struct Expect {
    std::string method, proxy_path, upstream_target, request_body, response_sha;
    size_t response_bytes = 0;
  };
  std::vector<Expect> expects;

  // 1. A non-streaming JSON POST with a credential.
  {
    const std::string path = "/mock/echo?tag=" + tag + "-echo";
    const std::string body =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"h\xc3\xa9llo " + tag +
        "\"}],\"stream\":false}";
    HttpResponse r = http_exchange(port,
                                   make_request("POST", path, port,
                                                {{"Authorization", "Bearer " + kSecret},
                                                 {"Content-Type", "application/json"},
                                                 {"Connection", "close"}},
                                                body),
                                   "POST");
    REQUIRE(r.status() == 200);
    json echo = r.body_json();
    CHECK(echo["body_sha256"] == sha256_hex(body));
    // Forwarded traffic is never altered: the upstream got the real credential.
    bool forwarded = false;
    for (const auto& h : echo["headers"]) {
      if (h[0] == "Authorization") forwarded = h[1] == "Bearer " + kSecret;
    }
    CHECK_MESSAGE(forwarded,
                  "the upstream did not get the unmasked Authorization: " << echo.dump());
    expects.push_back(
        {"POST", path, "/echo?tag=" + tag + "-echo", body, sha256_hex(r.body), r.body.size()});
  }
  // 2. A streaming SSE GET: the capture holds the de-chunked bytes the client got.
  {
    const std::string path = "/mock/sse?n=5&ms=50&tag=" + tag + "-sse";
    HttpResponse r = http_exchange(port, make_request("GET", path, port, {{"Connection", "close"}}),
                                   "GET", 10000ms);
    REQUIRE(r.status() == 200);
    size_t events = 0;
    for (size_t p = 0; (p = r.body.find("data: ", p)) != std::string::npos; ++p) ++events;
    CHECK(events == 5);
    expects.push_back(
        {"GET", path, "/sse?n=5&ms=50&tag=" + tag + "-sse", "", sha256_hex(r.body), r.body.size()});
  }
  // 3. A gzip body: passed and captured compressed, byte-exact.
  {
    const std::string path = "/mock/gzip?tag=" + tag + "-gz";
    HttpResponse r = http_exchange(
        port,
        make_request("GET", path, port, {{"Accept-Encoding", "gzip"}, {"Connection", "close"}}),
        "GET");
    REQUIRE(r.status() == 200);
    CHECK(r.head.get("Content-Encoding") == "gzip");
    const std::string mock_sha = r.head.get("X-Body-Sha256");
    CHECK(sha256_hex(r.body) == mock_sha);
    expects.push_back({"GET", path, "/gzip?tag=" + tag + "-gz", "", mock_sha, r.body.size()});
  }

  const auto t_wait = Clock::now();
  auto [rows, arrived] = await_rows(
      api, "q=" + tag,
      [](const std::vector<json>& rs) { return rs.size() >= 3 && all_finished(rs); }, 10000ms);
  MESSAGE("3 captures listed " << ms_since(t_wait) << " ms after the last response");
  REQUIRE_MESSAGE(arrived, "captures did not arrive: " << describe_rows(rows) << "\nproxy:\n"
                                                       << proxy.process().output_tail());
  CHECK(rows.size() == 3);
  auto paths = by_path(rows);

  std::string echo_response_file;
  for (const Expect& ex : expects) {
    CAPTURE(ex.proxy_path);
    REQUIRE(paths[ex.proxy_path].size() == 1);
    const json row = paths[ex.proxy_path][0];
    INFO("row: " << row.dump());
    const std::string id = row["id"].get<std::string>();
    CHECK(row["short_id"] == id.substr(0, 8));
    CHECK(row["method"] == ex.method);
    CHECK(row["route"] == "mock");
    CHECK(row["status"] == 200);
    CHECK(row["outcome"] == "complete");
    CHECK(row["error"].is_null());
    CHECK(row["request_bytes"] == ex.request_body.size());
    CHECK(row["response_bytes"] == ex.response_bytes);
    const json& d = row["durations"];
    CHECK(d["total_ms"].is_number());
    CHECK(d["upstream_headers_ms"].is_number());
    CHECK(d["first_byte_ms"].is_number());
    CHECK(d["request_forwarded_ms"].is_number());
    if (d["total_ms"].is_number()) CHECK(d["total_ms"].get<double>() > 0);
    if (d["total_ms"].is_number() && d["upstream_headers_ms"].is_number()) {
      CHECK(d["upstream_headers_ms"].get<double>() <= d["total_ms"].get<double>());
    }

    json detail = api.get_json("/requests/" + id);
    CHECK(detail["id"] == id);
    CHECK(detail["request_line"] == ex.method + " " + ex.upstream_target + " HTTP/1.1");
    CHECK(detail["status_line"].get<std::string>().rfind("HTTP/1.1 200", 0) == 0);
    REQUIRE(detail["files"]["request"].is_string());
    REQUIRE(detail["files"]["response"].is_string());
    const std::string req_rel = detail["files"]["request"].get<std::string>();
    const std::string res_rel = detail["files"]["response"].get<std::string>();
    const std::string started_at = row["started_at"].get<std::string>();
    check_file_name(req_rel, started_at, id.substr(0, 8), "request");
    check_file_name(res_rel, started_at, id.substr(0, 8), "response");
    REQUIRE(fs::is_regular_file(data + "/" + req_rel));
    REQUIRE(fs::is_regular_file(data + "/" + res_rel));

    // The request file: start line as forwarded, headers, X-Proxy-Path, blank line, body.
    const std::string req_file = read_file(data + "/" + req_rel);
    auto [req_head, req_body] = split_message(req_file);
    INFO("request head:\n" << req_head);
    CHECK(req_head.rfind(ex.method + " " + ex.upstream_target + " HTTP/1.1\r\n", 0) == 0);
    CHECK(req_head.find("\r\nX-Proxy-Path: " + ex.proxy_path + "\r\n") != std::string::npos);
    CHECK(req_body == ex.request_body);
    CHECK(req_head.find(kSecretCore) == std::string::npos);
    if (ex.method == "POST") {
      CHECK(req_head.find("\r\nAuthorization: Bearer ****WXYZ\r\n") != std::string::npos);
      CHECK(req_head.find("\r\nContent-Type: application/json\r\n") != std::string::npos);
      CHECK(row["request_content_type"] == "application/json");
    }

    // The response file: head, then exactly the body bytes the client received.
    const std::string res_file = read_file(data + "/" + res_rel);
    auto [res_head, res_body] = split_message(res_file);
    INFO("response head:\n" << res_head);
    CHECK(res_head.rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(res_body.size() == ex.response_bytes);
    CHECK(sha256_hex(res_body) == ex.response_sha);
    CHECK(res_head.find(kSecretCore) == std::string::npos);
    if (ex.method == "POST") {
      echo_response_file = data + "/" + res_rel;
      CHECK(res_body.find("Bearer " + kSecret) != std::string::npos);  // the upstream's echo
    }
    if (ex.proxy_path.find("/gzip") != std::string::npos) {
      CHECK(res_head.find("\r\nContent-Encoding: gzip\r\n") != std::string::npos);
      CHECK(row["response_content_encoding"] == "gzip");
      CHECK(gunzip(res_body).size() > 0);
    }
    if (ex.proxy_path.find("/sse") != std::string::npos) {
      CHECK(row["response_content_type"].get<std::string>().rfind("text/event-stream", 0) == 0);
      // 5 events 50 ms apart: the capture spans the stream.
      if (d["total_ms"].is_number()) CHECK(d["total_ms"].get<double>() >= 150);
      MESSAGE("SSE capture: total " << d["total_ms"] << " ms, first byte " << d["first_byte_ms"]
                                    << " ms");
    }

    // The raw API serves the same bytes as the files.
    CHECK(api.get_raw("/requests/" + id + "/request") == req_file);
    CHECK(api.get_raw("/requests/" + id.substr(0, 8) + "/response") == res_file);
  }

  // The credential reached no file of the log server (files, index, WAL) nor the spool.
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& x : v) out += "\n  " + x;
    return out;
  };
  // The one exception: /echo's response body is JSON listing the headers the upstream got, so
  // the upstream itself wrote the credential into it. That body is checked byte-exact above and
  // its head for the credential; the body is the upstream's, and is stored as it was.
  auto data_hits = files_containing(data, kSecretCore);
  std::erase(data_hits, echo_response_file);
  CHECK_MESSAGE(data_hits.empty(), "the credential is stored in:" << join(data_hits));
  auto spool_hits = files_containing(spool, kSecretCore);
  CHECK_MESSAGE(spool_hits.empty(), "the credential is spooled in:" << join(spool_hits));
  for (const auto& line : proxy.process().lines())
    CHECK(line.find(kSecretCore) == std::string::npos);
  CHECK(count_spooled_batches(spool) == 0);
}

TEST_CASE("capture: routes with logging false are not captured and unknown routes are (404)") {
  CaptureStack stack;
  auto& [dir, mock, data, spool, ls, proxy, port, api] = stack;
  const std::string tag = run_tag("lf");

  const std::string quiet_path = "/quiet/echo?tag=" + tag + "-quiet";
  HttpResponse quiet = http_get(port, quiet_path);
  CHECK(quiet.status() == 200);
  CHECK(quiet.body_json()["path"] == "/echo");

  const std::string unknown_path = "/nothing/" + tag + "-nf";
  HttpResponse unknown = http_get(port, unknown_path);
  CHECK(unknown.status() == 404);
  CHECK(unknown.body.find("No route found for GET " + unknown_path) != std::string::npos);

  // A captured exchange after both: once it has arrived, the earlier ones would have too.
  const std::string later_path = "/mock/echo?tag=" + tag + "-later";
  CHECK(http_get(port, later_path).status() == 200);

  auto [rows, arrived] = await_rows(
      api, "q=" + tag,
      [&](const std::vector<json>& rs) {
        auto p = by_path(rs);
        return p.count(later_path) && p.count(unknown_path) && all_finished(rs);
      },
      10000ms);
  REQUIRE_MESSAGE(arrived, "captures did not arrive: " << describe_rows(rows) << "\nproxy:\n"
                                                       << proxy.process().output_tail());
  auto paths = by_path(rows);
  CHECK_MESSAGE(paths.count(quiet_path) == 0, "a logging: false route was captured");
  CHECK(rows.size() == 2);
  CHECK(api.get_json("/requests?route=quiet")["requests"].empty());

  REQUIRE(paths[unknown_path].size() == 1);
  const json nf = paths[unknown_path][0];
  INFO("404 row: " << nf.dump());
  CHECK(nf["status"] == 404);
  CHECK(nf["outcome"] == "complete");
  CHECK(nf["method"] == "GET");
  CHECK(nf["response_bytes"] == unknown.body.size());
  MESSAGE("unknown route captured with route " << nf["route"] << ", destination "
                                               << nf["destination"]);
  const std::string id = nf["id"].get<std::string>();
  auto [res_head, res_body] = split_message(api.get_raw("/requests/" + id + "/response"));
  CHECK(res_head.rfind("HTTP/1.1 404 ", 0) == 0);
  CHECK(res_body == unknown.body);
  auto [req_head, req_body] = split_message(api.get_raw("/requests/" + id + "/request"));
  CHECK(req_head.find("\r\nX-Proxy-Path: " + unknown_path + "\r\n") != std::string::npos);
  CHECK(req_body.empty());

  CHECK(paths[later_path].size() == 1);
  CHECK(paths[later_path][0]["route"] == "mock");

  // The console marks captured exchanges with [log], and only those.
  auto quiet_line = proxy.process().find_line(std::regex("GET /quiet/echo\\?tag=" + tag), 5000ms);
  auto later_line = proxy.process().find_line(std::regex("GET /mock/echo\\?tag=" + tag), 5000ms);
  REQUIRE(quiet_line);
  REQUIRE(later_line);
  CHECK((*quiet_line)[0].find("[log]") == std::string::npos);
  for (const auto& line : proxy.process().lines()) {
    if (line.find(quiet_path) != std::string::npos) CHECK(line.find("[log]") == std::string::npos);
    if (line.find(later_path) != std::string::npos) CHECK(line.find("[log]") != std::string::npos);
  }
}

TEST_CASE("capture: log server down at proxy start - calls succeed and spool and all arrive once") {
  TempDir dir;
  MockUpstream mock;
  const std::string data = dir.file("data"), spool = dir.file("spool");
  const int ls_port = unused_port();
  write_file(
      dir.file("proxy.yaml"),
      proxy_yaml({mock.http_port(), "http://127.0.0.1:" + std::to_string(ls_port), spool, ""}));
  ProxyProc proxy(dir.file("proxy.yaml"));
  const int port = proxy.port();
  const std::string tag = run_tag("down");

  const int kCalls = 20;
  std::set<std::string> sent;
  RawConn conn(port);
  for (int i = 0; i < kCalls; ++i) {
    const std::string path = "/mock/echo?tag=" + tag + "-" + std::to_string(i);
    const std::string body = "call " + std::to_string(i) + " while the log server is down";
    auto r = conn.exchange(make_request("POST", path, port, {}, body), "POST");
    REQUIRE_MESSAGE(r, "no response to call " << i);
    CHECK(r->status() == 200);
    sent.insert(path);
  }

  const auto t_spool = Clock::now();
  bool spooled = await_cond([&] { return count_spooled_batches(spool) > 0; }, 10000ms);
  CHECK_MESSAGE(spooled, "no spool files in " << spool << "\nproxy:\n"
                                              << proxy.process().output_tail());
  MESSAGE(count_spooled_batches(spool)
          << " spooled batches " << ms_since(t_spool) << " ms after the last call");
  CHECK(proxy.process().find_line(std::regex(R"(\[capture\] log server .* unreachable)"), 5000ms));

  write_file(dir.file("log-server.yaml"), log_server_yaml(data, ls_port));
  const auto t_start = Clock::now();
  LogServerProc ls(dir.file("log-server.yaml"));
  REQUIRE(ls.port() == ls_port);
  Api api(ls.port());
  auto [rows, arrived] = await_rows(
      api, "q=" + tag,
      [&](const std::vector<json>& rs) { return rs.size() >= sent.size() && all_finished(rs); },
      30000ms, 100ms);
  MESSAGE("all " << rows.size() << " spooled captures listed " << ms_since(t_start)
                 << " ms after the log server started");
  REQUIRE_MESSAGE(arrived, "captures did not arrive: " << describe_rows(rows) << "\nproxy:\n"
                                                       << proxy.process().output_tail());
  CHECK(rows.size() == sent.size());
  auto paths = by_path(rows);
  for (const auto& p : sent) {
    CAPTURE(p);
    REQUIRE(paths[p].size() == 1);
    CHECK(paths[p][0]["outcome"] == "complete");
    CHECK(paths[p][0]["status"] == 200);
  }
  for (const auto& [p, v] : paths) CHECK_MESSAGE(sent.count(p), "unexpected capture " << p);

  bool drained = await_cond([&] { return count_spooled_batches(spool) == 0; }, 15000ms);
  CHECK_MESSAGE(drained, count_spooled_batches(spool) << " files left in the spool");
  MESSAGE("spool drained " << ms_since(t_start) << " ms after the log server started");
  CHECK(proxy.process().find_line(std::regex(R"(\[capture\] log server .* is back)"), 5000ms));
}

TEST_CASE(
    "capture: SIGKILL and restart of the log server under load loses and duplicates nothing") {
  TempDir dir;
  MockUpstream mock;
  const std::string data = dir.file("data"), spool = dir.file("spool");
  write_file(dir.file("log-server.yaml"), log_server_yaml(data));
  auto ls = std::make_unique<LogServerProc>(dir.file("log-server.yaml"));
  const int ls_port = ls->port();
  write_file(dir.file("proxy.yaml"), proxy_yaml({mock.http_port(), ls->url(), spool, ""}));
  ProxyProc proxy(dir.file("proxy.yaml"));
  const int port = proxy.port();
  const std::string tag = run_tag("kill");

  const int kTotal = 2000, kThreads = 4, kKillAfter = 500;
  const auto load_deadline = Clock::now() + 60s;
  std::atomic<int> next{0}, done{0}, failed{0};
  std::atomic<bool> thread_error{false};
  std::mutex mu;
  std::map<int, std::string> ok;  // request index -> body
  std::vector<std::string> failures;

  auto worker = [&] {
    try {
      std::unique_ptr<RawConn> conn;
      for (;;) {
        const int i = next.fetch_add(1);
        if (i >= kTotal || Clock::now() >= load_deadline) break;
        const std::string body = load_body(i);
        const std::string path = "/mock/echo?tag=" + tag + "-" + std::to_string(i);
        if (!conn || !conn->is_open()) conn = std::make_unique<RawConn>(port);
        auto r = conn->exchange(
            make_request("POST", path, port, {{"Content-Type", "application/octet-stream"}}, body),
            "POST", 10000ms);
        bool good = false;
        std::string why;
        if (!r) {
          why = "no response";
        } else if (!r->complete || r->status() != 200) {
          why = "status " + std::to_string(r->status()) + (r->complete ? "" : " incomplete");
        } else {
          json e = json::parse(r->body, nullptr, false);
          good = !e.is_discarded() && e.value("body_sha256", "") == sha256_hex(body);
          if (!good) why = "upstream got a different body";
        }
        {
          std::lock_guard<std::mutex> lk(mu);
          if (good) {
            ok.emplace(i, body);
          } else if (failures.size() < 10) {
            failures.push_back(std::to_string(i) + ": " + why);
          }
        }
        if (!good) {
          failed++;
          conn.reset();
        }
        done++;
      }
    } catch (...) {
      thread_error = true;
    }
  };

  const auto t_load = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker);

  bool reached = await_cond([&] { return done.load() >= kKillAfter; }, 60000ms, 2ms);
  CHECK(reached);
  const int done_at_kill = done.load();
  const size_t console_mark = proxy.process().line_count();
  const auto t_kill = Clock::now();
  REQUIRE(ls->process().send_signal(SIGKILL));
  REQUIRE(ls->process().wait_exit(5000ms));
  ls.reset();
  // The proxy notices within a batch interval or two (while the load goes on); then restart.
  auto noticed = proxy.process().find_line(
      std::regex(R"(\[capture\] log server .* (unreachable|answered))"), 5000ms, console_mark);
  // Let batches pile up in the spool while the load goes on, so the restart has a backlog.
  const bool spooled = await_cond([&] { return count_spooled_batches(spool) > 0; }, 5000ms, 2ms);
  const double down_ms = ms_since(t_kill);
  const int done_at_restart = done.load();
  write_file(dir.file("log-server-2.yaml"), log_server_yaml(data, ls_port));
  ls = std::make_unique<LogServerProc>(dir.file("log-server-2.yaml"), "log-server-2");
  REQUIRE(ls->port() == ls_port);
  const auto t_restart = Clock::now();

  for (auto& t : threads) t.join();
  const double load_ms = ms_since(t_load);
  const auto t_load_end = Clock::now();
  REQUIRE_FALSE(thread_error.load());
  const int sent = std::min(next.load(), kTotal);
  MESSAGE("load: " << sent << " requests (" << ok.size() << " ok, " << failed.load()
                   << " failed) in " << load_ms << " ms = " << sent / (load_ms / 1000)
                   << " req/s; log server killed after " << done_at_kill
                   << " requests, restarted after " << done_at_restart << " (" << down_ms
                   << " ms down; proxy noticed: " << std::string(noticed ? "yes" : "no")
                   << ", spooled: " << std::string(spooled ? "yes" : "no") << ")");
  CHECK(noticed.has_value());
  CHECK(spooled);
  // The client path never depends on the log server.
  std::string failure_text;
  for (const auto& f : failures) failure_text += "\n  " + f;
  CHECK_MESSAGE(failed.load() == 0, "failed requests, first ones:" << failure_text);
  CHECK(done_at_restart < sent);  // the restart happened under load

  Api api(ls->port());
  auto [rows, arrived] = await_rows(
      api, "q=" + tag,
      [&](const std::vector<json>& rs) { return rs.size() >= ok.size() && all_finished(rs); },
      60000ms, 250ms);
  MESSAGE("all " << rows.size() << " captures listed " << ms_since(t_load_end)
                 << " ms after the load ended (" << ms_since(t_restart)
                 << " ms after the restart)");
  std::string capture_lines;
  for (const auto& line : proxy.process().lines()) {
    if (line.find("[capture]") != std::string::npos) capture_lines += "\n  " + line;
  }
  MESSAGE("proxy capture messages:" << capture_lines);
  if (auto rec = ls->process().find_line(std::regex("recovery.*"), 0ms)) {
    MESSAGE("restarted log server: " << (*rec)[0]);
  }
  auto paths = by_path(rows);
  size_t missing = 0, duplicated = 0, not_complete = 0, wrong_bytes = 0;
  std::vector<std::string> examples;
  std::map<std::string, int> expected;  // path -> index
  for (const auto& [i, body] : ok) {
    const std::string path = "/mock/echo?tag=" + tag + "-" + std::to_string(i);
    expected[path] = i;
    auto it = paths.find(path);
    if (it == paths.end()) {
      ++missing;
      if (examples.size() < 10) examples.push_back("missing " + path);
      continue;
    }
    if (it->second.size() != 1) {
      ++duplicated;
      if (examples.size() < 10)
        examples.push_back("x" + std::to_string(it->second.size()) + " " + path);
    }
    const json& row = it->second[0];
    if (row["outcome"] != "complete" || row["status"] != 200) {
      ++not_complete;
      if (examples.size() < 10) examples.push_back(path + ": " + row.dump());
    }
    if (row["request_bytes"] != body.size()) ++wrong_bytes;
  }
  size_t unexpected = 0;
  for (const auto& [p, v] : paths) {
    if (!expected.count(p)) ++unexpected;
  }
  std::string example_text;
  for (const auto& e : examples) example_text += "\n  " + e;
  INFO("examples:" << example_text);
  CHECK_MESSAGE(arrived,
                "not all captures arrived within 60 s: " << rows.size() << " of " << ok.size());
  CHECK(missing == 0);
  CHECK(duplicated == 0);
  CHECK(not_complete == 0);
  CHECK(wrong_bytes == 0);
  // Requests the loop saw fail may or may not be captured; nothing else may be.
  CHECK(unexpected <= static_cast<size_t>(failed.load()));

  // A sample, denser around the kill, byte-exact through the raw API.
  std::vector<int> sample;
  for (int k = 0; k < 25; ++k) sample.push_back(k * sent / 25);
  for (int k = 0; k < 25; ++k) sample.push_back(std::max(0, done_at_kill - 60) + k * 5);
  size_t checked = 0;
  for (int i : sample) {
    auto it = ok.find(i);
    if (it == ok.end()) continue;
    const std::string path = "/mock/echo?tag=" + tag + "-" + std::to_string(i);
    if (paths[path].empty()) continue;  // counted as missing above
    CAPTURE(path);
    const std::string id = paths[path][0]["id"].get<std::string>();
    auto [head, body] = split_message(api.get_raw("/requests/" + id + "/request"));
    CHECK(head.rfind("POST /echo?tag=" + tag + "-" + std::to_string(i) + " HTTP/1.1\r\n", 0) == 0);
    CHECK(head.find("\r\nX-Proxy-Path: " + path + "\r\n") != std::string::npos);
    CHECK(body == it->second);
    ++checked;
  }
  CHECK(checked >= 45);
  CHECK(await_cond([&] { return count_spooled_batches(spool) == 0; }, 15000ms));
  CHECK(proxy.process().find_line(std::regex(R"(\[capture\] log server .* is back)"), 5000ms,
                                  console_mark));
}

TEST_CASE("capture: a stopped (SIGSTOP) log server does not slow the proxy") {
  CaptureStack stack;
  auto& [dir, mock, data, spool, ls, proxy, port, api] = stack;
  const std::string tag = run_tag("stop");

  RawConn conn(port);
  int n = 0;
  auto measure = [&](int count) {
    std::vector<double> ms;
    for (int k = 0; k < count; ++k) {
      const auto t0 = Clock::now();
      HttpResponse r = get_on(conn, port, "/mock/echo?tag=" + tag + "-" + std::to_string(n++));
      ms.push_back(ms_since(t0));
      CHECK(r.status() == 200);
    }
    return ms;
  };
  measure(20);  // warm-up: connections to the mock and the log server
  std::vector<double> before = measure(200);

  std::vector<double> during;
  {
    ContinueOnExit cont{ls.process().pid()};
    REQUIRE(ls.process().send_signal(SIGSTOP));
    during = measure(200);
    REQUIRE(ls.process().send_signal(SIGCONT));
  }
  const double med_before = percentile(before, 0.5), med_during = percentile(during, 0.5);
  MESSAGE("latency through the proxy: median "
          << med_before << " ms (p99 " << percentile(before, 0.99) << ") before, median "
          << med_during << " ms (p99 " << percentile(during, 0.99)
          << ") while the log server was stopped");
  CHECK(med_during < 5 * med_before + 5);

  const auto t_cont = Clock::now();
  auto [rows, arrived] = await_rows(
      api, "q=" + tag,
      [&](const std::vector<json>& rs) {
        return rs.size() >= static_cast<size_t>(n) && all_finished(rs);
      },
      30000ms, 100ms);
  MESSAGE("all " << rows.size() << " captures listed " << ms_since(t_cont) << " ms after SIGCONT");
  CHECK_MESSAGE(arrived, "captures did not arrive: " << rows.size() << " of " << n);
  auto paths = by_path(rows);
  CHECK(paths.size() == static_cast<size_t>(n));
  for (int k = 0; k < n; ++k) {
    const std::string p = "/mock/echo?tag=" + tag + "-" + std::to_string(k);
    if (paths[p].size() != 1) {
      CHECK_MESSAGE(paths[p].size() == 1, p << " captured " << paths[p].size() << " times");
      break;
    }
    if (paths[p][0]["outcome"] != "complete") {
      CHECK_MESSAGE(paths[p][0]["outcome"] == "complete", paths[p][0].dump());
      break;
    }
  }
}

TEST_CASE(
    "capture: a burst through a stalled log server overflows to the spool: none truncated, "
    "all once, in order") {
  TempDir dir;
  MockUpstream mock;
  const std::string data = dir.file("data"), spool = dir.file("spool");
  write_file(dir.file("log-server.yaml"), log_server_yaml(data));
  LogServerProc ls(dir.file("log-server.yaml"));
  // A small queue (4 MiB, high water 2 MiB): the burst's ~10 MB of captures is well past it
  // while the log server does not answer (without the overflow path ~80% were truncated).
  // Smaller, a loaded CI machine may not schedule the fsync'ing shipper before it fills.
  write_file(dir.file("proxy.yaml"), proxy_yaml({mock.http_port(), ls.url(), spool,
                                                 "queue_bytes: 4MiB, batch_bytes: 256KiB"}));
  ProxyProc proxy(dir.file("proxy.yaml"));
  const int port = proxy.port();
  const std::string tag = run_tag("burst");
  const std::string body(1024, 'b');

  RawConn conn(port);
  int n = 0;
  auto call = [&] {
    const std::string path = "/mock/echo?tag=" + tag + "-" + std::to_string(n++);
    auto r = conn.exchange(make_request("POST", path, port, {}, body), "POST");
    REQUIRE_MESSAGE(r, "no response to " << path);
    CHECK(r->status() == 200);
  };
  for (int k = 0; k < 20; ++k) call();  // warm-up: the shipper's connection is open

  const int kBurst = 3000;
  double burst_ms = 0;
  size_t spooled_during = 0;
  {
    ContinueOnExit cont{ls.process().pid()};
    REQUIRE(ls.process().send_signal(SIGSTOP));
    const auto t0 = Clock::now();
    for (int k = 0; k < kBurst; ++k) call();
    burst_ms = ms_since(t0);
    await_cond([&] { return count_spooled_batches(spool) > 0; }, 5000ms);
    spooled_during = count_spooled_batches(spool);
    REQUIRE(ls.process().send_signal(SIGCONT));
  }
  MESSAGE(kBurst << " calls in " << burst_ms << " ms while the log server was stopped; "
                 << spooled_during << " batches spooled");
  CHECK_MESSAGE(spooled_during > 0, "the burst never reached the spool\nproxy:\n"
                                        << proxy.process().output_tail());
  CHECK(proxy.process().find_line(std::regex(R"(\[capture\] log server slower than the traffic)"),
                                  0ms));

  Api api(ls.port());
  const auto t_cont = Clock::now();
  auto [rows, arrived] = await_rows(
      api, "q=" + tag,
      [&](const std::vector<json>& rs) {
        return rs.size() >= static_cast<size_t>(n) && all_finished(rs);
      },
      60000ms, 200ms);
  MESSAGE("all " << rows.size() << " captures listed " << ms_since(t_cont) << " ms after SIGCONT");
  REQUIRE_MESSAGE(arrived, "captures did not arrive: " << rows.size() << " of " << n << "\nproxy:\n"
                                                       << proxy.process().output_tail());
  CHECK(rows.size() == static_cast<size_t>(n));
  const OnceInOrder seen = check_once_in_order(rows, tag, n);
  MESSAGE(seen.truncated << " of " << n << " exchanges truncated");
  CHECK(seen.truncated == 0);
  CHECK(seen.wrong == 0);
  CHECK_FALSE(proxy.process().find_line(std::regex(R"(\[capture\] WARNING)"), 0ms).has_value());
  // Frames applied out of order would be skipped (unknown exchange); a re-sent batch counts
  // as duplicate and is not applied twice.
  const std::string metrics = api.get_raw("/metrics");
  CHECK_MESSAGE(metrics.find("\nlog_server_frames_skipped_total 0\n") != std::string::npos,
                metrics);
  bool drained = await_cond([&] { return count_spooled_batches(spool) == 0; }, 30000ms);
  CHECK_MESSAGE(drained, count_spooled_batches(spool) << " files left in the spool");
}

// A gauge or counter of the proxy's /metrics (no labels); -1 when absent.
double proxy_metric(int admin_port, const std::string& name) {
  HttpResponse r = http_get(admin_port, "/metrics");
  std::smatch m;
  const std::regex line("\n" + name + " ([0-9.e+-]+)\n");
  return std::regex_search(r.body, m, line) ? std::stod(m[1]) : -1;
}

// A log server and a proxy (with its admin listener) in front of the mock, for the tests of
// batches in flight: numbered 1 KiB calls on one connection, the log server killed and
// restarted on its port, then every call checked captured once, in order.
struct InFlightRig {
  TempDir dir;
  MockUpstream mock;
  const std::string data = dir.file("data"), spool = dir.file("spool");
  std::unique_ptr<LogServerProc> ls;
  int ls_port = 0;
  std::unique_ptr<ProxyProc> proxy;
  int port = 0, admin = 0;
  std::string tag;
  const std::string body = std::string(1024, 'f');
  std::unique_ptr<RawConn> conn;
  int n = 0;  // calls made

  InFlightRig(const std::string& tag_prefix, const ProxyCfg& extra) : tag(run_tag(tag_prefix)) {
    write_file(dir.file("log-server.yaml"), log_server_yaml(data));
    ls = std::make_unique<LogServerProc>(dir.file("log-server.yaml"));
    ls_port = ls->port();
    ProxyCfg cfg = extra;
    cfg.mock_port = mock.http_port();
    cfg.server_url = ls->url();
    cfg.spool_dir = spool;
    write_file(dir.file("proxy.yaml"), proxy_yaml(cfg, "admin_host: \"127.0.0.1\", admin_port: 0"));
    proxy = std::make_unique<ProxyProc>(dir.file("proxy.yaml"));
    port = proxy->port();
    admin = std::stoi(
        proxy->process().wait_for_line(std::regex(R"(admin on http://[^ ]+:(\d+))"), 10000ms)[1]);
    conn = std::make_unique<RawConn>(port);
  }

  void call() {
    const std::string path = "/mock/echo?tag=" + tag + "-" + std::to_string(n++);
    auto r = conn->exchange(make_request("POST", path, port, {}, body), "POST");
    REQUIRE_MESSAGE(r, "no response to " << path);
    CHECK(r->status() == 200);
  }
  double sent() { return proxy_metric(admin, "logging_proxy_batches_sent_total"); }
  // Warm-up: the log server's first answer says it applies batches in order.
  void warm_up() {
    for (int k = 0; k < 20; ++k) call();
    REQUIRE(await_cond([&] { return sent() >= 1; }, 10000ms));
  }
  void kill_log_server() {
    REQUIRE(ls->process().send_signal(SIGKILL));
    ls.reset();
  }
  void restart_log_server(const std::string& name) {
    write_file(dir.file("log-server.yaml"), log_server_yaml(data, ls_port));
    ls = std::make_unique<LogServerProc>(dir.file("log-server.yaml"), name);
    REQUIRE(ls->port() == ls_port);
  }
  // Every call captured once, complete, in call order; the spool empty in the end.
  std::string check_all_once_in_order() {
    Api api(ls->port());
    auto [rows, arrived] = await_rows(
        api, "q=" + tag,
        [&](const std::vector<json>& rs) {
          return rs.size() >= static_cast<size_t>(n) && all_finished(rs);
        },
        60000ms, 200ms);
    REQUIRE_MESSAGE(arrived, "captures did not arrive: " << rows.size() << " of " << n
                                                         << "\nproxy:\n"
                                                         << proxy->process().output_tail());
    CHECK(rows.size() == static_cast<size_t>(n));
    const OnceInOrder seen = check_once_in_order(rows, tag, n);
    CHECK(seen.truncated == 0);
    CHECK(seen.wrong == 0);
    const std::string metrics = api.get_raw("/metrics");
    CHECK_MESSAGE(metrics.find("\nlog_server_frames_skipped_total 0\n") != std::string::npos,
                  metrics);
    CHECK(await_cond([&] { return count_spooled_batches(spool) == 0; }, 30000ms));
    return metrics;
  }
};

TEST_CASE(
    "capture: several batches in flight, the log server killed under them: every exchange once, "
    "in order") {
  // Small batches, so that a burst fills several at once.
  InFlightRig rig("inflight", {0, "", "", "batch_bytes: 16KiB"});
  rig.warm_up();
  double in_flight = 0;
  {
    ContinueOnExit cont{rig.ls->process().pid()};
    REQUIRE(rig.ls->process().send_signal(SIGSTOP));
    // A stopped log server answers nothing: batches pile up on the connections, up to one each.
    const auto deadline = Clock::now() + 20s;
    while (in_flight < 3 && rig.n < 3000 && Clock::now() < deadline) {
      for (int k = 0; k < 20; ++k) rig.call();
      in_flight = proxy_metric(rig.admin, "logging_proxy_batches_in_flight");
    }
    MESSAGE(in_flight << " batches in flight after " << rig.n << " calls");
    REQUIRE(in_flight == 3);
    // Killed with them in flight; the calls go on meanwhile.
    REQUIRE(rig.ls->process().send_signal(SIGKILL));
  }
  rig.ls.reset();  // reaped only now: ContinueOnExit signalled a pid still ours
  for (int k = 0; k < 200; ++k) rig.call();
  rig.restart_log_server("log-server-2");
  for (int k = 0; k < 300; ++k) rig.call();
  const std::string metrics = rig.check_all_once_in_order();
  std::smatch waited;
  std::regex_search(metrics, waited, std::regex(R"(\nlog_server_batches_waited_total (\d+))"));
  MESSAGE(rig.n << " calls, all captured once; after the restart " << waited[1]
                << " batches arrived before the one they follow and waited");
}

TEST_CASE(
    "capture: spooled batches drain several at a time, the log server killed under them: every "
    "exchange once, in order") {
  // A batch cut every 5 ms while the log server is down: many small spooled batches.
  InFlightRig rig("spooldrain", {0, "", "", "", "5ms"});
  rig.warm_up();
  // Down: every batch goes to the spool.
  rig.kill_log_server();
  const auto fill_deadline = Clock::now() + 20s;
  while (count_spooled_batches(rig.spool) < 100 && rig.n < 5000 && Clock::now() < fill_deadline) {
    for (int k = 0; k < 20; ++k) rig.call();
  }
  const size_t spooled = count_spooled_batches(rig.spool);
  MESSAGE(spooled << " spooled batches after " << rig.n << " calls");
  REQUIRE(spooled >= 20);

  // Back, and stopped as soon as it has acknowledged one spooled batch: those sent next wait
  // on their connections, and only a shipper that streams the spool has several out.
  const double sent_before = rig.sent();
  rig.restart_log_server("log-server-2");
  {
    ContinueOnExit cont{rig.ls->process().pid()};
    REQUIRE(await_cond([&] { return rig.sent() > sent_before; }, 20000ms, 1ms));
    REQUIRE(rig.ls->process().send_signal(SIGSTOP));
    const size_t left = count_spooled_batches(rig.spool);
    double in_flight = 0;
    REQUIRE(await_cond(
        [&] {
          in_flight = proxy_metric(rig.admin, "logging_proxy_batches_in_flight");
          return in_flight == 3;
        },
        10000ms));
    MESSAGE(in_flight << " spooled batches in flight, " << left << " in the spool");
    REQUIRE(rig.ls->process().send_signal(SIGKILL));
  }
  rig.ls.reset();
  for (int k = 0; k < 100; ++k) rig.call();
  rig.restart_log_server("log-server-3");
  for (int k = 0; k < 100; ++k) rig.call();
  rig.check_all_once_in_order();
}

TEST_CASE(
    "capture: a stalled log server with the spool full too: truncated, counted, warned, each "
    "exchange recorded once") {
  TempDir dir;
  MockUpstream mock;
  const std::string data = dir.file("data"), spool = dir.file("spool");
  write_file(dir.file("log-server.yaml"), log_server_yaml(data));
  LogServerProc ls(dir.file("log-server.yaml"));
  // Room for about two batches on disk: the burst overflows memory and then the spool.
  write_file(dir.file("proxy.yaml"),
             proxy_yaml({mock.http_port(), ls.url(), spool,
                         "queue_bytes: 1MiB, batch_bytes: 256KiB, spool_max_bytes: 700KiB"}));
  ProxyProc proxy(dir.file("proxy.yaml"));
  const int port = proxy.port();
  const std::string tag = run_tag("full");
  const std::string body(1024, 'b');

  RawConn conn(port);
  int n = 0;
  auto call = [&] {
    const std::string path = "/mock/echo?tag=" + tag + "-" + std::to_string(n++);
    auto r = conn.exchange(make_request("POST", path, port, {}, body), "POST");
    REQUIRE_MESSAGE(r, "no response to " << path);
    CHECK(r->status() == 200);
  };
  for (int k = 0; k < 20; ++k) call();
  {
    ContinueOnExit cont{ls.process().pid()};
    REQUIRE(ls.process().send_signal(SIGSTOP));
    for (int k = 0; k < 3000; ++k) call();
    CHECK(proxy.process().find_line(std::regex(R"(\[capture\] spool full or unwritable)"), 5000ms));
    REQUIRE(ls.process().send_signal(SIGCONT));
  }
  Api api(ls.port());
  auto [rows, arrived] = await_rows(
      api, "q=" + tag,
      [&](const std::vector<json>& rs) {
        return rs.size() >= static_cast<size_t>(n) && all_finished(rs);
      },
      60000ms, 200ms);
  REQUIRE_MESSAGE(arrived, "captures did not arrive: " << rows.size() << " of " << n << "\nproxy:\n"
                                                       << proxy.process().output_tail());
  auto paths = by_path(rows);
  CHECK(paths.size() == static_cast<size_t>(n));
  int truncated = 0;
  for (const auto& [p, v] : paths) {
    CHECK_MESSAGE(v.size() == 1, p << " captured " << v.size() << " times");
    if (!v.empty() && v[0]["outcome"] == "truncated") ++truncated;
  }
  MESSAGE(truncated << " of " << n << " exchanges truncated with a 700 KiB spool");
  CHECK(truncated > 0);
  auto warned = proxy.process().find_line(
      std::regex(R"(\[capture\] WARNING: (\d+) exchanges truncated)"), 10000ms);
  CHECK_MESSAGE(warned.has_value(), proxy.process().output_tail());
  size_t episodes = 0;
  for (const auto& l : proxy.process().lines()) {
    episodes += l.find("[capture] spool full or unwritable") != std::string::npos;
  }
  CHECK(episodes >= 1);
  CHECK(episodes <= 3);  // once per episode, not once per batch
}

TEST_CASE("capture: auth_token in the one shared config file: captures arrive") {
  TempDir dir;
  MockUpstream mock;
  const std::string data = dir.file("data"), spool = dir.file("spool");
  const int ls_port = unused_port();
  const std::string token = "e2e-capture-" + run_tag("tok");
  write_file(
      dir.file("config.yaml"),
      proxy_yaml({mock.http_port(), "http://127.0.0.1:" + std::to_string(ls_port), spool, ""}) +
          log_server_yaml(data, ls_port, token));
  LogServerProc ls(dir.file("config.yaml"));
  ProxyProc proxy(dir.file("config.yaml"));
  const int port = proxy.port();
  const std::string tag = run_tag("auth");

  Api anon(ls.port());
  auto denied = anon.get("/requests");
  REQUIRE(denied);
  CHECK(denied->status == 401);

  const std::string path = "/mock/echo?tag=" + tag;
  CHECK(http_get(port, path).status() == 200);
  Api api(ls.port(), token);
  auto [rows, arrived] = await_rows(
      api, "q=" + tag, [](const std::vector<json>& rs) { return !rs.empty() && all_finished(rs); },
      10000ms);
  REQUIRE_MESSAGE(arrived, "capture did not arrive\nproxy:\n" << proxy.process().output_tail());
  CHECK(rows.size() == 1);
  CHECK(rows[0]["proxy_path"] == path);
  CHECK(rows[0]["outcome"] == "complete");
  CHECK_FALSE(proxy.process().find_line(std::regex("answered 401"), 0ms));
}

TEST_CASE("capture: a proxy without the log server's token spools and says 401") {
  TempDir dir;
  MockUpstream mock;
  const std::string data = dir.file("data"), spool = dir.file("spool");
  const std::string token = "e2e-capture-" + run_tag("tok");
  write_file(dir.file("log-server.yaml"), log_server_yaml(data, 0, token));
  LogServerProc ls(dir.file("log-server.yaml"));
  write_file(dir.file("proxy.yaml"), proxy_yaml({mock.http_port(), ls.url(), spool, ""}));
  ProxyProc proxy(dir.file("proxy.yaml"));
  const int port = proxy.port();
  const std::string tag = run_tag("noauth");

  RawConn conn(port);
  for (int i = 0; i < 3; ++i) {
    CHECK(get_on(conn, port, "/mock/echo?tag=" + tag + "-" + std::to_string(i)).status() == 200);
  }
  auto said =
      proxy.process().find_line(std::regex(R"(\[capture\] log server answered 401)"), 10000ms);
  CHECK_MESSAGE(said, "no 401 on the proxy console:\n" << proxy.process().output_tail());
  if (said) MESSAGE("proxy: " << (*said)[0]);
  CHECK_MESSAGE(await_cond([&] { return count_spooled_batches(spool) > 0; }, 10000ms),
                "nothing spooled in " << spool);
  Api api(ls.port(), token);
  auto rows = api.list_all("q=" + tag);
  REQUIRE(rows);
  CHECK_MESSAGE(rows->empty(), "captures arrived without the token: " << describe_rows(*rows));
  CHECK(api.list_all("")->empty());
}

// --- replay -------------------------------------------------------------------------------------

namespace {

// Runs `logging-proxy replay ARGS...` to completion; returns its exit code and output lines.
std::pair<int, std::vector<std::string>> run_replay(
    const std::vector<std::string>& args,
    std::vector<std::pair<std::string, std::string>> env = {}) {
  env.push_back({"LOG_SERVER_TOKEN", ""});
  std::vector<std::string> argv = {"replay"};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess p(bin_dir() + "/logging-proxy", argv, ChildOptions{env, "", "replay"});
  REQUIRE_MESSAGE(p.wait_exit(30000ms), "replay did not finish:\n" << p.output_tail());
  return {p.exit_code().value_or(-1), p.lines()};
}

std::optional<std::smatch> find_summary(const std::vector<std::string>& lines, std::smatch* m) {
  static const std::regex re(
      R"(replay of ([0-9a-f]{8}): (\d{3}) [^,]*, (\d+) bytes, [0-9.]+ ms, new capture ([0-9a-f-]{36}))");
  for (const auto& l : lines) {
    if (std::regex_search(l, *m, re)) return *m;
  }
  return std::nullopt;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

struct ReplayStack {
  TempDir dir;
  MockUpstream mock;
  std::unique_ptr<LogServerProc> ls;
  std::unique_ptr<ProxyProc> proxy;
  int proxy_port = 0;
  std::string config;

  ReplayStack() {
    write_file(dir.file("log-server.yaml"), log_server_yaml(dir.file("data")));
    ls = std::make_unique<LogServerProc>(dir.file("log-server.yaml"));
    // One more route that keeps the provider key in the proxy (routes.NAME.headers).
    config = dir.file("proxy.yaml");
    write_file(config, proxy_yaml({mock.http_port(), ls->url(), dir.file("spool"), ""}) +
                           "  inject: {pattern: \"/inject/\", destination: \"http://127.0.0.1:" +
                           std::to_string(mock.http_port()) +
                           "/\", headers: {X-Provider-Key: \"pk-${LP_E2E_PROVIDER_KEY}\"}}\n");
    proxy = std::make_unique<ProxyProc>(config, "proxy",
                                        std::vector<std::pair<std::string, std::string>>{
                                            {"LP_E2E_PROVIDER_KEY", "abcdefghijklmnop"}});
    proxy_port = proxy->port();
  }
  std::vector<std::string> to_from() const {
    return {"--config", config,   "--to", "http://127.0.0.1:" + std::to_string(proxy_port),
            "--from",   ls->url()};
  }
  // Awaits the one finished capture whose path contains `tag`; returns it.
  json await_capture(Api& api, const std::string& tag) {
    auto [rows, ok] = await_rows(
        api, "q=" + tag,
        [](const std::vector<json>& r) { return r.size() == 1 && all_finished(r); }, 10000ms);
    REQUIRE_MESSAGE(ok, "capture " << tag << " did not arrive: " << describe_rows(rows));
    return rows[0];
  }
};

}  // namespace

TEST_CASE(
    "replay: a JSON call is re-sent with the credential re-supplied and linked by replay_of") {
  ReplayStack s;
  Api api(s.ls->port());
  const std::string tag = run_tag("replay");
  const std::string body = "{\"model\":\"m\",\"messages\":[],\"tag\":\"" + tag + "\"}";
  HttpResponse r = http_exchange(
      s.proxy_port,
      make_request("POST", "/mock/echo?tag=" + tag, s.proxy_port,
                   {{"Authorization", "Bearer " + kSecret}, {"Content-Type", "application/json"}},
                   body),
      "POST");
  REQUIRE(r.status() == 200);
  json original = s.await_capture(api, tag);
  const std::string id = original["id"];

  auto args = s.to_from();
  args.insert(args.begin(), id.substr(0, 8));
  auto [code, lines] =
      run_replay(args, {{"LOGGING_PROXY_REPLAY_AUTHORIZATION", "Bearer sk-replayed-42"}});
  INFO(joined(lines));
  CHECK(code == 0);
  std::smatch m;
  REQUIRE(find_summary(lines, &m));
  CHECK(m[1] == id.substr(0, 8));
  CHECK(m[2] == "200");
  const std::string new_id = m[4];
  CHECK(new_id != id);
  // stdout carries the upstream's answer: the same body, the re-supplied credential.
  std::string out = joined(lines);
  size_t brace = out.find('{');
  REQUIRE(brace != std::string::npos);
  // The body has no newline of its own, so the stderr summary may follow it on the same line.
  size_t end = out.find("replay of ", brace);
  json echo =
      json::parse(out.substr(brace, std::min(end, out.find('\n', brace)) - brace), nullptr, false);
  REQUIRE(!echo.is_discarded());
  CHECK(echo["body_sha256"] == sha256_hex(body));
  CHECK(echo["path"] == "/echo");
  bool resupplied = false;
  for (const auto& h : echo["headers"]) {
    if (h[0] == "Authorization") resupplied = h[1] == "Bearer sk-replayed-42";
    CHECK(h[0] != "X-Replay-Of");  // meant for the proxy, not forwarded
  }
  CHECK(resupplied);
  // The new capture is linked to the original.
  auto [replays, ok] = await_rows(
      api, "replay_of=" + id, [](const std::vector<json>& rows) { return rows.size() == 1; },
      10000ms);
  REQUIRE(ok);
  CHECK(replays[0]["id"] == new_id);
  json detail = api.get_json("/requests/" + new_id);
  CHECK(detail["replay_of"] == id);
  CHECK(detail["proxy_path"] == original["proxy_path"]);
}

TEST_CASE("replay: a streamed (SSE) capture streams its events again") {
  ReplayStack s;
  Api api(s.ls->port());
  const std::string tag = run_tag("replay-sse");
  HttpResponse r = http_exchange(
      s.proxy_port, make_request("GET", "/mock/sse?n=5&ms=30&tag=" + tag, s.proxy_port), "GET");
  REQUIRE(r.status() == 200);
  json original = s.await_capture(api, tag);
  auto args = s.to_from();
  args.insert(args.begin(), original["id"].get<std::string>());
  auto [code, lines] = run_replay(args);
  INFO(joined(lines));
  CHECK(code == 0);
  int events = 0;
  for (const auto& l : lines) events += l.rfind("data: {\"i\":", 0) == 0;
  CHECK(events == 5);
  std::smatch m;
  REQUIRE(find_summary(lines, &m));
  CHECK(m[2] == "200");
}

TEST_CASE("replay: unknown id, bad id and an unreachable log server exit 2 with a clear message") {
  ReplayStack s;
  {
    auto args = s.to_from();
    args.insert(args.begin(), "deadbeef");
    auto [code, lines] = run_replay(args);
    CHECK(code == 2);
    CHECK(joined(lines).find("no capture with id 'deadbeef'") != std::string::npos);
  }
  {
    auto [code, lines] = run_replay({"../etc/passwd", "--config", s.config});
    CHECK(code == 2);
    CHECK(joined(lines).find("is not a capture id") != std::string::npos);
  }
  {
    const int dead = unused_port();
    auto [code, lines] = run_replay({"deadbeef", "--config", s.config, "--to",
                                     "http://127.0.0.1:" + std::to_string(s.proxy_port), "--from",
                                     "http://127.0.0.1:" + std::to_string(dead)});
    CHECK(code == 2);
    CHECK(joined(lines).find("cannot reach the log server") != std::string::npos);
  }
  {
    auto [code, lines] = run_replay({});
    CHECK(code == 2);
    CHECK(joined(lines).find("missing capture ID") != std::string::npos);
  }
}

TEST_CASE("routes.NAME.headers: the proxy injects the provider key and the capture masks it") {
  ReplayStack s;
  Api api(s.ls->port());
  const std::string tag = run_tag("inject");
  HttpResponse r =
      http_exchange(s.proxy_port,
                    make_request("GET", "/inject/echo?tag=" + tag, s.proxy_port,
                                 {{"X-Provider-Key", "client-value-should-be-replaced"}}),
                    "GET");
  REQUIRE(r.status() == 200);
  json echo = r.body_json();
  std::vector<std::string> seen;
  for (const auto& h : echo["headers"]) {
    if (h[0] == "X-Provider-Key") seen.push_back(h[1]);
  }
  CHECK(seen == std::vector<std::string>{"pk-abcdefghijklmnop"});
  json capture = s.await_capture(api, tag);
  auto [head, body] =
      split_message(api.get_raw("/requests/" + capture["id"].get<std::string>() + "/request"));
  CHECK(head.find("X-Provider-Key: ****mnop\r\n") != std::string::npos);
  CHECK(head.find("abcdefghijkl") == std::string::npos);
}

TEST_CASE("capture: timings carry the proxy's overhead, connect time and per-chunk delays") {
  CaptureStack stack;
  auto& [dir, mock, data, spool, ls, proxy, port, api] = stack;
  const std::string tag = run_tag("timing");
  const std::string key = "AIzaSy-0123456789abcdefWXYZ";  // a Gemini-style key in the query

  // A slow stream on the proxy's first upstream connection (a new one: connect time), then
  // short calls, which find that upstream connection in the pool.
  constexpr int kEvents = 6;
  const std::string sse_path =
      "/mock/sse?n=" + std::to_string(kEvents) + "&ms=100&tag=" + tag + "-sse&key=" + key;
  {
    HttpResponse r = http_exchange(port, make_request("GET", sse_path, port, {}), "GET", 10000ms);
    REQUIRE(r.status() == 200);
    size_t events = 0;
    for (size_t p = 0; (p = r.body.find("data: ", p)) != std::string::npos; ++p) ++events;
    REQUIRE(events == kEvents);
  }
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = http_exchange(
        port, make_request("GET", "/mock/echo?tag=" + tag + "-echo" + std::to_string(i), port, {}),
        "GET");
    REQUIRE(r.status() == 200);
  }

  auto [rows, arrived] = await_rows(
      api, "q=" + tag,
      [](const std::vector<json>& rs) { return rs.size() >= 4 && all_finished(rs); }, 10000ms);
  REQUIRE_MESSAGE(arrived, "captures did not arrive: " << describe_rows(rows) << "\nproxy:\n"
                                                       << proxy.process().output_tail());
  const std::string masked_sse_path =
      "/mock/sse?n=" + std::to_string(kEvents) + "&ms=100&tag=" + tag + "-sse&key=****WXYZ";
  auto paths = by_path(rows);
  REQUIRE(paths[masked_sse_path].size() == 1);

  // The stream: one chunk per event, each forwarded within a generous bound.
  const std::string sse_id = paths[masked_sse_path][0]["id"].get<std::string>();
  json sse = api.get_json("/requests/" + sse_id);
  const json& t = sse["timings"];
  INFO("stream timings: " << t.dump());
  MESSAGE("SSE timings: " << t.dump());
  CHECK(t["response_chunks"] == kEvents);
  REQUIRE(t["response_chunk_delay_max_us"].is_number_integer());
  REQUIRE(t["response_chunk_delay_total_us"].is_number_integer());
  const int64_t max_us = t["response_chunk_delay_max_us"].get<int64_t>();
  const int64_t total_us = t["response_chunk_delay_total_us"].get<int64_t>();
  CHECK(max_us >= 0);
  CHECK(max_us < 500000);  // an event is not held back until the next one (100 ms later)
  CHECK(total_us >= max_us);
  CHECK(total_us <= max_us * kEvents);
  REQUIRE(t["upstream_connect_us"].is_number_integer());  // the first upstream connection
  REQUIRE(t["proxy_overhead_us"].is_number_integer());
  REQUIRE(t["request_forwarded_us"].is_number_integer());
  const int64_t connect_us = t["upstream_connect_us"].get<int64_t>();
  const int64_t overhead_us = t["proxy_overhead_us"].get<int64_t>();
  CHECK(connect_us > 0);
  CHECK(overhead_us >= 0);
  CHECK(overhead_us + connect_us == t["request_forwarded_us"].get<int64_t>());
  CHECK(t["total_us"].get<int64_t>() >= 100000 * (kEvents - 1));
  CHECK(t["first_byte_us"].get<int64_t>() <= t["total_us"].get<int64_t>());

  // The query credential is masked in the record, the stored request line and the console.
  CHECK(sse["request_line"].get<std::string>().find(key) == std::string::npos);
  CHECK(sse["request_line"].get<std::string>().find("key=****WXYZ") != std::string::npos);
  CHECK(sse["destination"].get<std::string>().find("key=****WXYZ") != std::string::npos);
  const std::string req = api.get_raw("/requests/" + sse_id + "/request");
  CHECK(req.find("X-Proxy-Path: " + masked_sse_path + "\r\n") != std::string::npos);
  CHECK(files_containing(data, "0123456789abcdef").empty());
  bool console_masked = false;
  for (const auto& line : proxy.process().lines()) {
    CHECK(line.find("0123456789abcdef") == std::string::npos);
    if (line.find("key=****WXYZ -> ") != std::string::npos) console_masked = true;
  }
  CHECK(console_masked);

  // The short calls after it: pooled, so no connect time; at least one used the pool.
  int pooled = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string path = "/mock/echo?tag=" + tag + "-echo" + std::to_string(i);
    REQUIRE(paths[path].size() == 1);
    json d = api.get_json("/requests/" + paths[path][0]["id"].get<std::string>());
    const json& et = d["timings"];
    INFO("echo timings: " << et.dump());
    CHECK(et["proxy_overhead_us"].is_number_integer());
    CHECK(et["response_chunks"].get<int64_t>() >= 1);
    if (!et.contains("upstream_connect_us")) {
      ++pooled;
      CHECK(et["proxy_overhead_us"] == et["request_forwarded_us"]);
    }
  }
  CHECK(pooled >= 1);
}

TEST_CASE("capture: a stream is on record with its status before its first event or line") {
  CaptureStack stack;
  auto& [dir, mock, data, spool, ls, proxy, port, api] = stack;
  // An SSE stream, and Ollama's kind: NDJSON lines in a chunked body.
  for (const std::string kind : {"sse", "ndjson"}) {
    CAPTURE(kind);
    const std::string tag = run_tag("early-" + kind);
    // The first event is 60 s away; the head is sent at once. A user watching the log server
    // sees the stream begun (200, in progress) while it waits, and the wait holds no capture
    // buffer in the proxy.
    RawConn conn(port);
    REQUIRE(conn.send_all(make_request(
        "GET",
        "/mock/sse?n=1&ms=0&first_ms=60000&tag=" + tag + (kind == "ndjson" ? "&ndjson=1" : ""),
        port, {})));
    const std::optional<ResponseHead> head = conn.read_head(5000ms);
    REQUIRE(head);
    REQUIRE(head->status == 200);
    auto [rows, seen] = await_rows(
        api, "q=" + tag,
        [](const std::vector<json>& r) {
          return r.size() == 1 && r[0].value("status", 0) == 200 &&
                 r[0].value("outcome", "") == "in_progress";
        },
        10000ms);
    CHECK_MESSAGE(seen, "no in-progress row with status 200: " << json(rows).dump());
    conn.close();
    // Hanging up ends the exchange: it is recorded once, as the client's abort.
    auto [done, ended] = await_rows(
        api, "q=" + tag,
        [](const std::vector<json>& r) {
          return r.size() == 1 && r[0].value("outcome", "") == "client_aborted";
        },
        10000ms);
    CHECK_MESSAGE(ended, json(done).dump());
  }
}

TEST_CASE("the proxy's own answers (301, 404, 502, 504) never put a query credential on disk") {
  TempDir dir;
  MockUpstream mock;
  const std::string data = dir.file("data"), spool = dir.file("spool");
  write_file(dir.file("log-server.yaml"), log_server_yaml(data));
  LogServerProc ls(dir.file("log-server.yaml"));
  // /dead/ goes to a port nothing listens on (bound, then closed); /slow/ outlives a 300 ms
  // upstream_timeout; /dir/ answers "/dir" with a redirect that keeps the query.
  const int dead_port = unused_port();
  const std::string mock_url = "http://127.0.0.1:" + std::to_string(mock.http_port()) + "/";
  write_file(dir.file("proxy.yaml"),
             "server: {host: \"127.0.0.1\", port: 0, upstream_timeout: 300ms}\n"
             "logging: {console: true, server_url: \"" +
                 ls.url() + "\", spool_dir: \"" + spool +
                 "\", batch_interval: 50ms}\n"
                 "routes:\n"
                 "  dead: {pattern: \"/dead/\", destination: \"http://127.0.0.1:" +
                 std::to_string(dead_port) +
                 "/\"}\n"
                 "  slow: {pattern: \"/slow/\", destination: \"" +
                 mock_url +
                 "\"}\n"
                 "  dir: {pattern: \"/dir/\", destination: \"" +
                 mock_url + "\"}\n");
  ProxyProc proxy(dir.file("proxy.yaml"));
  const int port = proxy.port();
  const std::string tag = run_tag("own");
  const std::string query = "?tag=" + tag + "&key=" + kSecret;
  const std::vector<std::pair<std::string, int>> calls = {
      {"/nowhere/x" + query, 404},
      {"/dead/v1/chat" + query, 502},
      {"/slow/slow" + query + "&ms=3000", 504},
      {"/dir" + query, 301},
  };
  for (const auto& [target, status] : calls) {
    CAPTURE(target);
    HttpResponse r = http_exchange(port, make_request("GET", target, port, {}), "GET", 10000ms);
    CHECK(r.status() == status);
    // The answer itself masks the key (it is what the capture stores); a redirect's Location
    // must keep it, or the client could not follow it.
    CHECK(r.body.find(kSecretCore) == std::string::npos);
    if (status == 301) CHECK(r.head.get("Location").find(kSecret) != std::string::npos);
  }
  Api api(ls.port());
  auto [rows, arrived] = await_rows(
      api, "q=" + tag,
      [&](const std::vector<json>& rs) { return rs.size() >= calls.size() && all_finished(rs); },
      10000ms);
  REQUIRE_MESSAGE(arrived, "captures did not arrive: " << describe_rows(rows));
  size_t masked = 0;
  for (const auto& row : rows) {
    auto [head, body] =
        split_message(api.get_raw("/requests/" + row["id"].get<std::string>() + "/response"));
    if (body.find("****WXYZ") != std::string::npos) ++masked;
  }
  CHECK(masked == 2);  // the 404 and 301 bodies name the target, masked
  // Nothing under the data dir or the spool holds the key, in any file.
  size_t files = 0;
  for (const auto& root : {data, spool}) {
    if (!fs::exists(root)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (!e.is_regular_file()) continue;
      ++files;
      CAPTURE(e.path().string());
      CHECK(read_file(e.path().string()).find(kSecretCore) == std::string::npos);
    }
  }
  CHECK(files >= 2 * calls.size());
  // Nor the proxy's console.
  CHECK(proxy.process().output_tail().find(kSecretCore) == std::string::npos);
}
