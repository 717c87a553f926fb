// End-to-end tests of the log-server executable: a real process on port 0 with its data dir
// in a temp dir, fed capture batches over HTTP (httplib::Client) and queried through its API.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <httplib.h>

#include "common/capture_wire.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/log_server_fixture.h"
#include "tests/support/prom_text.h"

using namespace e2e;
using lp::wire::FrameType;

TEST_CASE("log-server: ingest, list, detail, raw files, metrics") {
  LogServer ls;
  auto c = ls.client();
  const std::string a = make_id(1), b = make_id(2);

  // Exchange a spans two batches; b is complete in the second.
  Batch b1("proxy-1", 1);
  b1.begin(a, "2025-09-13T02:11:09.123456Z", "mock", "/mock/v1/chat/completions?x=1")
      .frame(FrameType::kRequestHead, {{"id", a}}, kHead)
      .frame(FrameType::kRequestBody, {{"id", a}}, "{\"a\":");
  auto r1 = post(c, b1.bytes());
  REQUIRE(r1);
  CHECK(r1->status == 200);
  CHECK(json::parse(r1->body) == json{{"applied", true}, {"frames", 3}, {"skipped", 0}});

  // While in progress, it is listed as such.
  json page = get_json(c, "/requests");
  REQUIRE(page["requests"].size() == 1);
  CHECK(page["requests"][0]["outcome"] == "in_progress");
  CHECK(page["requests"][0]["status"].is_null());
  CHECK(page["requests"][0]["durations"]["total_ms"].is_null());

  Batch b2("proxy-1", 2);
  b2.frame(FrameType::kRequestBody, {{"id", a}}, "1}")
      .frame(FrameType::kResponseHead, {{"id", a}, {"t_us", 2500}}, kResponseHead)
      .frame(FrameType::kResponseBody, {{"id", a}, {"t_us", 3000}},
             std::string("data: \0x\n\n", 10))
      .frame(FrameType::kResponseBody, {{"id", a}, {"t_us", 3100}}, "\xff")
      .end(a, 200)
      .exchange(b, "2025-09-13T02:11:10Z", 404, "other", "/other/thing");
  auto r2 = post(c, b2.bytes());
  REQUIRE(r2);
  CHECK(r2->status == 200);

  // A re-sent batch is acknowledged without effect.
  auto dup = post(c, b2.bytes());
  REQUIRE(dup);
  CHECK(dup->status == 200);
  CHECK(json::parse(dup->body) == json{{"duplicate", true}});

  page = get_json(c, "/requests");
  REQUIRE(page["requests"].size() == 2);
  CHECK(page["next_cursor"].is_null());
  json first = page["requests"][0], second = page["requests"][1];
  CHECK(first["id"] == b);  // newest first
  CHECK(second["id"] == a);
  CHECK(second["short_id"] == a.substr(0, 8));
  CHECK(second["started_at"] == "2025-09-13T02:11:09.123456Z");
  CHECK(second["route"] == "mock");
  CHECK(second["method"] == "POST");
  CHECK(second["proxy_path"] == "/mock/v1/chat/completions?x=1");
  CHECK(second["status"] == 200);
  CHECK(second["outcome"] == "complete");
  CHECK(second["request_bytes"] == 5);
  CHECK(second["response_bytes"] == 11);
  CHECK(second["durations"]["total_ms"] == 45.5);
  CHECK(second["durations"]["upstream_headers_ms"] == 2.5);
  CHECK(second["durations"]["first_byte_ms"] == 3.0);
  CHECK(second["durations"]["request_forwarded_ms"] == 0.12);
  CHECK(second["request_content_type"] == "application/json");
  CHECK(second["response_content_type"] == "text/event-stream");
  CHECK(second["response_content_encoding"].is_null());
  CHECK(second["replay_of"].is_null());

  // Filters and pagination over HTTP.
  CHECK(get_json(c, "/requests?status=404")["requests"].size() == 1);
  CHECK(get_json(c, "/requests?route=mock")["requests"][0]["id"] == a);
  CHECK(get_json(c, "/requests?q=chat%2Fcompletions")["requests"].size() == 1);
  CHECK(get_json(c, "/requests?since=2025-09-13T02:11:10Z")["requests"].size() == 1);
  CHECK(get_json(c, "/requests?until=2025-09-13T04:11:10%2B02:00")["requests"].size() == 1);
  CHECK(get_json(c, "/requests?method=post&outcome=complete")["requests"].size() == 2);
  json p1 = get_json(c, "/requests?limit=1");
  REQUIRE(p1["next_cursor"].is_string());
  // Every item carries the cursor that pages on after it: the last one's is next_cursor.
  CHECK(p1["requests"][0]["cursor"] == p1["next_cursor"]);
  CHECK(get_json(c, "/requests?limit=2")["requests"][0]["cursor"] == p1["next_cursor"]);
  json p2 = get_json(c, "/requests?limit=1&cursor=" + p1["next_cursor"].get<std::string>());
  REQUIRE(p2["requests"].size() == 1);
  CHECK(p2["requests"][0]["id"] == a);
  CHECK(p2["next_cursor"].is_null());

  // The full record, by 8-char prefix.
  json d = get_json(c, "/requests/" + a.substr(0, 8));
  CHECK(d["id"] == a);
  CHECK(d["proxy_id"] == "proxy-1");
  CHECK(d["client_ip"] == "127.0.0.1");
  CHECK(d["timings"]["total_us"] == 45500);
  CHECK(d["request_line"] == "POST /v1/chat/completions HTTP/1.1");
  CHECK(d["request_headers"] ==
        json::array({json::array({"Host", "127.0.0.1:9"}),
                     json::array({"Content-Type", "application/json"}),
                     json::array({"X-Proxy-Path", "/mock/v1/chat/completions?x=1"})}));
  CHECK(d["status_line"] == "HTTP/1.1 200 OK");
  CHECK(d["response_headers"].size() == 3);
  CHECK(d["response_headers"][2] == json::array({"X-Dup", "b"}));
  CHECK(d["files"]["request"] == "2025-09-13/2025-09-13_02-11-09.123_0a000001_request.bin");
  CHECK(d["files"]["response"] == "2025-09-13/2025-09-13_02-11-09.123_0a000001_response.bin");
  CHECK(get_json(c, "/requests/" + a)["id"] == a);
  CHECK(get_json(c, "/requests/" + a.substr(0, 12))["id"] == a);

  // Raw messages, byte-exact, and the same bytes as the files on disk.
  auto raw_req = c.Get(("/requests/" + a + "/request").c_str());
  REQUIRE(raw_req);
  CHECK(raw_req->status == 200);
  CHECK(raw_req->get_header_value("Content-Type") == "application/octet-stream");
  CHECK(raw_req->body == kHead + "{\"a\":1}");
  CHECK(read_file(ls.data() + "/" + d["files"]["request"].get<std::string>()) == raw_req->body);
  auto raw_res = c.Get(("/requests/" + a.substr(0, 8) + "/response").c_str());
  REQUIRE(raw_res);
  CHECK(raw_res->body == kResponseHead + std::string("data: \0x\n\n", 10) + "\xff");
  // Ranges of a raw message work (the body is served from the file, not from memory).
  httplib::Headers range{{"Range", "bytes=5-8"}};
  auto part = c.Get(("/requests/" + a + "/request").c_str(), range);
  REQUIRE(part);
  CHECK(part->status == 206);
  CHECK(part->body == kHead.substr(5, 4));
  struct stat st;
  REQUIRE(::stat(ls.data().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat((ls.data() + "/" + d["files"]["request"].get<std::string>()).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  // Unknown, ambiguous and malformed ids.
  get_json(c, "/requests/" + make_id(99), 404);
  get_json(c, "/requests/0a00000f", 404);
  json amb = get_json(c, "/requests/0a00000", 400);  // 7 characters
  CHECK(amb["parameter"] == "id");
  get_json(c, "/requests/..%2F..%2Fetc", 404);  // decoded to a path no route matches
  get_json(c, "/requests/..", 400);
  get_json(c, "/requests/zzzzzzzz", 400);
  get_json(c, "/requests/" + make_id(99) + "/response", 404);
  get_json(c, "/requests/" + a + "/other", 404);
  get_json(c, "/nowhere", 404);

  // Bad parameters name the parameter.
  CHECK(get_json(c, "/requests?limit=0", 400)["parameter"] == "limit");
  CHECK(get_json(c, "/requests?limit=5000", 400)["parameter"] == "limit");
  CHECK(get_json(c, "/requests?status=abc", 400)["parameter"] == "status");
  CHECK(get_json(c, "/requests?outcome=done", 400)["parameter"] == "outcome");
  CHECK(get_json(c, "/requests?since=yesterday", 400)["parameter"] == "since");
  CHECK(get_json(c, "/requests?cursor=%21%21", 400)["parameter"] == "cursor");
  CHECK(get_json(c, "/requests?colour=red", 400)["parameter"] == "colour");

  // A second exchange sharing a's 8-char prefix makes the prefix ambiguous: 409 with both.
  const std::string twin = a.substr(0, 8) + "-ffff-4000-8000-000000000000";
  auto r3 = post(c, Batch("proxy-1", 3).exchange(twin, "2025-09-13T02:11:11Z", 200).bytes());
  REQUIRE(r3);
  CHECK(r3->status == 200);
  json conflict = get_json(c, "/requests/" + a.substr(0, 8), 409);
  CHECK(conflict["parameter"] == "id");
  REQUIRE(conflict["candidates"].size() == 2);
  std::set<std::string> candidates{conflict["candidates"][0]["id"].get<std::string>(),
                                   conflict["candidates"][1]["id"].get<std::string>()};
  CHECK(candidates == std::set<std::string>{a, twin});
  CHECK(get_json(c, "/requests/" + a.substr(0, 9) + "0")["id"] == a);  // more characters
  auto raw_conflict = c.Get(("/requests/" + a.substr(0, 8) + "/request").c_str());
  REQUIRE(raw_conflict);
  CHECK(raw_conflict->status == 409);

  // Health and metrics.
  CHECK(get_json(c, "/healthz") == json{{"status", "ok"}});
  CHECK(metric(c, "log_server_batches_applied_total") == 3);
  CHECK(metric(c, "log_server_batches_duplicate_total") == 1);
  CHECK(metric(c, "log_server_exchanges_ingested_total") == 3);
  CHECK(metric(c, "log_server_exchanges") == 3);
  CHECK(metric(c, "log_server_bytes_ingested_total") > 0);
  CHECK(metric(c, "log_server_frames_skipped_total") == 0);
  // The whole exposition is valid Prometheus text, not only the lines read above.
  auto metrics = c.Get("/metrics");
  REQUIRE(metrics);
  const auto exposition = lp::test::parse_prom_text(metrics->body);
  std::string problems;
  for (const std::string& p : exposition.problems) problems += p + "\n";
  CHECK_MESSAGE(exposition.problems.empty(), problems << "in\n" << metrics->body);
  CHECK(lp::test::prom_value(exposition, "log_server_ingest_errors_total", {{"kind", "malformed"}})
            .has_value());

  // SIGTERM: clean stop, exit 0.
  CHECK(ls.process().terminate(10000ms));
  CHECK(ls.process().exit_code() == 0);
}

TEST_CASE("log-server: bad batches get 400 and write nothing") {
  LogServer ls;
  auto c = ls.client();
  Batch good("p", 1);
  good.exchange(make_id(1), "2025-09-13T02:11:09Z", 200);
  const std::string& bytes = good.bytes();
  const std::string bad_bodies[] = {
      "",
      "not a batch",
      bytes.substr(0, bytes.size() - 1),                 // truncated last frame
      "LPCB\x09" + bytes.substr(5),                      // unknown version
      bytes + "\x01\x00\x00\x00\x02\x00\x00\x00\x00{}",  // a second batch frame
  };
  for (const auto& body : bad_bodies) {
    auto r = post(c, body);
    REQUIRE(r);
    INFO(r->body);
    CHECK(r->status == 400);
    json j = json::parse(r->body, nullptr, false);
    CHECK(j["error"].get<std::string>().rfind("malformed batch: ", 0) == 0);
  }
  // Over the size limit: refused from the Content-Length alone, as JSON.
  std::string big_post =
      "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
      "Content-Length: " +
      std::to_string(lp::wire::kMaxBatchBytes + 1) + "\r\n\r\n" + bytes;
  HttpResponse too_big = http_exchange(ls.port(), big_post, "POST");
  CHECK(too_big.status() == 413);
  CHECK(too_big.body_json()["error"].is_string());
  CHECK(metric(c, "log_server_ingest_errors_total{kind=\"too_large\"}") == 1);

  CHECK(count_files(ls.data()) == 0);
  CHECK(get_json(c, "/requests")["requests"].empty());
  CHECK(metric(c, "log_server_ingest_errors_total{kind=\"malformed\"}") == 5);
  CHECK(metric(c, "log_server_batches_applied_total") == 0);

  // The good batch then applies, and a frame for an unknown exchange is only counted.
  auto ok = post(c, bytes);
  REQUIRE(ok);
  CHECK(ok->status == 200);
  Batch orphan("p", 2);
  orphan.frame(FrameType::kRequestBody, {{"id", make_id(50)}}, "x");
  auto r = post(c, orphan.bytes());
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(json::parse(r->body)["skipped"] == 1);
  CHECK(metric(c, "log_server_frames_skipped_total") == 1);
  CHECK(metric(c, "log_server_ingest_errors_total{kind=\"unknown_exchange\"}") == 1);
  CHECK(count_files(ls.data()) == 2);
}

TEST_CASE("log-server: bearer token") {
  const std::string token = "e2e-secret-token";
  LogServer ls("", ChildOptions{{{"LOG_SERVER_TOKEN", token}}, "", ""});
  auto anon = ls.client();
  auto wrong = ls.client("e2e-secret-tokeN");
  auto good = ls.client(token);

  auto h = anon.Get("/healthz");
  REQUIRE(h);
  CHECK(h->status == 200);
  for (const char* path : {"/requests", "/metrics", "/requests/0a000001", "/nowhere"}) {
    CAPTURE(path);
    auto r = anon.Get(path);
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(r->get_header_value("WWW-Authenticate") == "Bearer");
    CHECK(json::parse(r->body, nullptr, false)["error"].is_string());
    auto w = wrong.Get(path);
    REQUIRE(w);
    CHECK(w->status == 401);
  }
  Batch b("p", 1);
  b.exchange(make_id(1), "2025-09-13T02:11:09Z", 200);
  auto denied = post(anon, b.bytes());
  REQUIRE(denied);
  CHECK(denied->status == 401);
  CHECK(count_files(ls.data()) == 0);
  // The same connection-less client still works afterwards (the unread body closed it).
  auto accepted = post(good, b.bytes());
  REQUIRE(accepted);
  CHECK(accepted->status == 200);
  CHECK(get_json(good, "/requests")["requests"].size() == 1);
}

TEST_CASE("log-server: restart marks unfinished exchanges truncated") {
  TempDir keep;
  const std::string a = make_id(1), b = make_id(2);
  {
    LogServer ls("", {}, &keep.path());
    auto c = ls.client();
    Batch batch("p", 1);
    batch.begin(a, "2025-09-13T02:11:09Z", "mock", "/mock/stream")
        .frame(FrameType::kRequestHead, {{"id", a}}, kHead)
        .frame(FrameType::kResponseHead, {{"id", a}, {"t_us", 1}}, kResponseHead)
        .frame(FrameType::kResponseBody, {{"id", a}, {"t_us", 2}}, "data: 1\n\n")
        .exchange(b, "2025-09-13T02:11:08Z", 200);
    auto r = post(c, batch.bytes());
    REQUIRE(r);
    REQUIRE(r->status == 200);
    ls.process().send_signal(SIGKILL);
    ls.process().wait_exit(5000ms);
  }
  LogServer again("", {}, &keep.path());
  auto line = again.process().find_line(std::regex("recovery: 1 exchange"), 2000ms);
  CHECK(line.has_value());
  auto c = again.client();
  json ra = get_json(c, "/requests/" + a);
  CHECK(ra["outcome"] == "truncated");
  CHECK(ra["error"] == "log server restarted before the exchange ended");
  CHECK(get_json(c, "/requests/" + b)["outcome"] == "complete");
  CHECK(get_json(c, "/requests?outcome=truncated")["requests"].size() == 1);
  auto raw = c.Get(("/requests/" + a + "/response").c_str());
  REQUIRE(raw);
  CHECK(raw->body == kResponseHead + "data: 1\n\n");
  CHECK(metric(c, "log_server_exchanges") == 2);
}

TEST_CASE("log-server: command line") {
  TempDir dir;
  auto run = [&](std::vector<std::string> args, int want_exit) {
    ChildProcess p(bin_dir() + "/log-server", args, ChildOptions{{}, dir.path(), ""});
    REQUIRE(p.wait_exit(10000ms));
    CHECK(p.exit_code() == want_exit);
    std::string out;
    for (const auto& l : p.lines()) out += l + "\n";
    return out;
  };
  CHECK(run({"--version"}, 0).find("log-server ") == 0);
  CHECK(run({"--help"}, 0).find("Usage: log-server") != std::string::npos);
  CHECK(run({"--bogus"}, 2).find("log-server: unknown argument") != std::string::npos);
  CHECK(run({"--config", "missing.yaml"}, 2).find("log-server: ") == 0);
  write_file(dir.file("bad.yaml"), "log_server:\n  port: 70000\n");
  CHECK(run({"--config", "bad.yaml"}, 2).find("log-server: bad.yaml") == 0);
  write_file(dir.file("pct.yaml"), "log_server:\n  auth_token: \"a%41\"\n");
  CHECK(run({"--config", "pct.yaml"}, 2).find("'%'") != std::string::npos);
  write_file(dir.file("ok.yaml"), "log_server:\n  port: 8099\n  data_dir: store\n");
  std::string check = run({"--config", "ok.yaml", "--check"}, 0);
  CHECK(check.find("ok.yaml: OK") != std::string::npos);
  CHECK(check.find("http://localhost:8099") != std::string::npos);
  CHECK(check.find("cpu priority: nice 10 or nicer") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.file("store")));  // --check creates nothing
  // Listening beyond loopback without a token warns (shown by --check, so nothing listens on
  // 0.0.0.0 here); with a token, or on loopback, it does not.
  write_file(dir.file("open.yaml"), "log_server:\n  host: 0.0.0.0\n  port: 0\n  data_dir: store\n");
  auto warnings = [&](const std::string& file, const std::string& token) {
    ChildProcess p(bin_dir() + "/log-server", {"--config", file, "--check"},
                   ChildOptions{{{"LOG_SERVER_TOKEN", token}}, dir.path(), ""});
    REQUIRE(p.wait_exit(10000ms));
    CHECK(p.exit_code() == 0);
    size_t n = 0;
    for (const auto& l : p.lines()) n += l.starts_with("WARNING: log-server listens on 0.0.0.0");
    return n;
  };
  CHECK(warnings("open.yaml", "") == 1);
  CHECK(warnings("open.yaml", "a-long-enough-token-0123456789") == 0);
  CHECK(warnings("ok.yaml", "") == 0);
  // A data dir the user made with a wide mode is kept as is, with a warning (files inside are
  // created 0600 regardless).
  std::filesystem::create_directory(dir.file("wide"));
  std::filesystem::permissions(dir.file("wide"), std::filesystem::perms(0755));
  write_file(dir.file("wide.yaml"),
             "log_server:\n  host: 127.0.0.1\n  port: 0\n  data_dir: wide\n");
  ChildProcess wide(bin_dir() + "/log-server", {"--config", "wide.yaml"},
                    ChildOptions{{{"LOG_SERVER_TOKEN", ""}}, dir.path(), ""});
  wide.wait_for_line(std::regex(R"(WARNING: log_server\.data_dir wide is accessible by group or )"
                                R"(others \(mode 755\); .*chmod 700)"),
                     10000ms);
  wide.wait_for_line(std::regex(R"(log-server listening on http://127\.0\.0\.1:\d+)"), 10000ms);
  CHECK(wide.terminate(10000ms));
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir.file("wide"))) {
    if (!e.is_regular_file()) continue;
    CAPTURE(e.path().string());
    CHECK((std::filesystem::status(e.path()).permissions() & std::filesystem::perms(077)) ==
          std::filesystem::perms::none);
  }
}

// The nice value of each thread of `pid` (field 19 of /proc/PID/task/TID/stat).
std::vector<int> thread_nice_values(pid_t pid) {
  std::vector<int> out;
  for (const auto& t :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream in(t.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (stat.empty()) continue;                                   // the thread ended
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // from field 3, the state
    std::string f;
    for (int i = 3; i <= 19 && fields >> f; ++i) {
    }
    out.push_back(std::stoi(f));
  }
  return out;
}

TEST_CASE("log-server: runs at log_server.nice on every thread - a nicer start is kept") {
  errno = 0;
  const int ours = getpriority(PRIO_PROCESS, 0);  // a test run under nice raises every floor
  REQUIRE(errno == 0);
  struct Row {
    std::string yaml;
    bool wrap_in_nice_15;
    int want;
  };
  const Row rows[] = {
      {"", false, std::max(ours, 10)},  // the default
      {"  nice: 7\n", false, std::max(ours, 7)},
      {"  nice: 0\n", false, ours},               // left as started
      {"  nice: 7\n", true, std::max(ours, 15)},  // never raised back: that needs privileges
  };
  for (const Row& row : rows) {
    CAPTURE(row.yaml);
    CAPTURE(row.wrap_in_nice_15);
    TempDir dir;
    write_file(dir.file("c.yaml"),
               "log_server:\n  host: 127.0.0.1\n  port: 0\n  data_dir: data\n" + row.yaml);
    const std::string exe = bin_dir() + "/log-server";
    std::vector<std::string> args{"--config", "c.yaml"};
    if (row.wrap_in_nice_15) args.insert(args.begin(), {"-n", "15", exe});
    ChildProcess p(row.wrap_in_nice_15 ? "/usr/bin/nice" : exe, args,
                   ChildOptions{{{"LOG_SERVER_TOKEN", ""}}, dir.path(), ""});
    auto m = p.wait_for_line(std::regex(R"(log-server listening on http://127\.0\.0\.1:(\d+))"),
                             10000ms);
    httplib::Client c("127.0.0.1", std::stoi(m[1]));
    REQUIRE(c.Get("/healthz"));  // served by a worker thread, started after the nice was set
    const std::vector<int> nice = thread_nice_values(p.pid());
    CHECK(nice.size() > 4);  // main, signals, deriver, retention, the API's workers
    for (int n : nice) CHECK(n == row.want);
    // Its own threads are named; the API's workers keep the process's name. The signal thread
    // starts after the "listening" line: awaited, not raced.
    std::vector<std::string> names;
    const auto named = [&](const char* name) {
      return std::count(names.begin(), names.end(), name) == 1;
    };
    await_cond(
        [&] {
          names = p.thread_names();
          return named("ls-deriver") && named("signals");
        },
        10000ms);
    CHECK(named("ls-deriver"));
    CHECK(named("signals"));
    CHECK(p.terminate(10000ms));
  }
}

TEST_CASE("log-server: ingest rate (batches of 200 exchanges, 2 KiB bodies)") {
  LogServer ls;
  auto c = ls.client();
  c.set_keep_alive(true);
  const int kBatches = 5, kPerBatch = 200;
  const std::string body(2048, 'b');
  std::vector<std::string> batches;
  for (int i = 0; i < kBatches; ++i) {
    Batch b("bench", static_cast<uint64_t>(i + 1));
    for (int j = 0; j < kPerBatch; ++j) {
      int n = i * kPerBatch + j;
      b.exchange(make_id(n), "2025-09-13T02:11:09Z", 200, "mock", "/mock/v1/chat/completions",
                 body);
    }
    batches.push_back(b.bytes());
  }
  size_t total_bytes = 0;
  auto t0 = Clock::now();
  for (const auto& b : batches) {
    auto r = post(c, b);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    total_bytes += b.size();
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  MESSAGE("ingest: " << kBatches * kPerBatch << " exchanges in " << s
                     << " s = " << kBatches * kPerBatch / s << " exchanges/s, "
                     << total_bytes / s / 1e6 << " MB/s of batches");
  CHECK(metric(c, "log_server_exchanges") == kBatches * kPerBatch);
  auto t1 = Clock::now();
  json page = get_json(c, "/requests?limit=50");
  MESSAGE("/requests (1000 rows, limit 50): "
          << std::chrono::duration<double, std::milli>(Clock::now() - t1).count() << " ms");
  CHECK(page["requests"].size() == 50);
}

TEST_CASE("log-server: one server per data dir and per port - a killed server's lock is gone") {
  LogServer first;
  auto c = first.client();
  // An exchange in progress: a second server's recovery would mark it truncated.
  const std::string id = make_id(901);
  {
    Batch b("lock-test", 1);
    b.begin(id, "2025-09-13T02:11:09.000000Z", "mock", "/mock/v1/x");
    auto r = post(c, b.bytes());
    REQUIRE(r);
    REQUIRE(r->status == 200);
  }
  auto start_second = [&](const std::string& yaml) {
    write_file(first.dir() + "/second.yaml", yaml);
    auto p = std::make_unique<ChildProcess>(
        bin_dir() + "/log-server", std::vector<std::string>{"--config", "second.yaml"},
        ChildOptions{{{"LOG_SERVER_TOKEN", ""}}, first.dir(), "second"});
    REQUIRE(p->wait_exit(10000ms));
    CHECK(p->exit_code() == 1);
    return p->output_tail();
  };
  SUBCASE("the same data dir, another port: refused before recovery touches anything") {
    const std::string out = start_second(
        "log_server:\n  host: 127.0.0.1\n  port: 0\n  data_dir: " + first.data() + "\n");
    CAPTURE(out);
    CHECK(out.find("data_dir " + first.data() + " is in use by another log-server (pid " +
                   std::to_string(first.process().pid()) + ")") != std::string::npos);
    CHECK(out.find("recovery") == std::string::npos);
    CHECK(get_json(c, "/requests/" + id)["outcome"] == "in_progress");
  }
  SUBCASE("the same port, another data dir: refused, not sharing the port") {
    const std::string out =
        start_second("log_server:\n  host: localhost\n  port: " + std::to_string(first.port()) +
                     "\n  data_dir: " + first.dir() + "/other\n");
    CAPTURE(out);
    CHECK(out.find("cannot listen on localhost:" + std::to_string(first.port()) +
                   ": Address already in use") != std::string::npos);
    // Every request still reaches the first server.
    for (int i = 0; i < 20; ++i) {
      auto fresh = first.client();
      CHECK(get_json(fresh, "/requests")["requests"].size() == 1);
    }
  }
  SUBCASE("after SIGKILL the data dir is free at once, and recovery runs") {
    ::kill(first.process().pid(), SIGKILL);
    REQUIRE(first.process().wait_exit(10000ms));
    write_file(first.dir() + "/again.yaml",
               "log_server:\n  host: 127.0.0.1\n  port: 0\n  data_dir: " + first.data() + "\n");
    LogServerProc again(first.dir() + "/again.yaml");
    auto c2 = httplib::Client("127.0.0.1", again.port());
    CHECK(get_json(c2, "/requests/" + id)["outcome"] == "truncated");
  }
}

TEST_CASE("log-server: a browser's Accept-Encoding gets gzip, never quality-11 brotli") {
  LogServer ls;
  auto c = ls.client();
  c.set_decompress(false);
  Batch b("enc-test", 1);
  for (int i = 0; i < 50; ++i) b.exchange(make_id(700 + i), "2025-09-13T02:11:09.000000Z", 200);
  auto posted = post(c, b.bytes());
  REQUIRE(posted);
  REQUIRE(posted->status == 200);
  struct Row {
    const char* accept;
    const char* coding;
  };
  const Row rows[] = {
      {"gzip, deflate, br", "gzip"},
      {"br", ""},
      {"br;q=1.0, gzip;q=0.5", "gzip"},
      {"identity", ""},
  };
  for (const Row& r : rows) {
    CAPTURE(r.accept);
    auto res = c.Get("/requests?limit=50", {{"Accept-Encoding", r.accept}});
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Encoding") == r.coding);
  }
}
