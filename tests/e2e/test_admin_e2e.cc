// The proxy's admin listener, reload and JSON console, end to end: a real logging-proxy in front
// of the real mock upstream. /metrics is read by the Prometheus text checker
// (tests/support/prom_text.h) and its counters are watched moving as requests, streams,
// spooling and truncation happen; routes are reloaded under load (SIGHUP and POST /reload)
// while streams stay open; JSON console lines are compared with the text ones.

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include <doctest/doctest.h>

#include "tests/e2e/harness.h"
#include "tests/support/prom_text.h"

using namespace e2e;
using lp::test::parse_prom_text;
using lp::test::prom_value;

namespace {

std::string routes_yaml(const std::map<std::string, std::string>& prefixes, int mock_port) {
  std::string out = "routes:\n";
  for (const auto& [name, prefix] : prefixes) {
    out += "  " + name + ": {pattern: \"" + prefix +
           "\", destination: \"http://127.0.0.1:" + std::to_string(mock_port) + "/\"}\n";
  }
  return out;
}

std::string admin_config(int mock_port, const std::string& logging_extra = "",
                         const std::map<std::string, std::string>& prefixes = {
                             {"mock", "/mock/"}}) {
  return "server: {host: \"127.0.0.1\", port: 0, admin_port: 0, upstream_timeout: \"30s\"}\n"
         "logging: {server_url: \"http://127.0.0.1:9\", spool_dir: spool" +
         logging_extra + "}\n" + routes_yaml(prefixes, mock_port);
}

int admin_port_of(ChildProcess& proc) {
  auto m = proc.wait_for_line(std::regex(R"(admin on http://[^ ]+:(\d+))"), 10000ms);
  return std::stoi(m[1]);
}

lp::test::PromExposition scrape(int admin_port) {
  HttpResponse r = http_get(admin_port, "/metrics");
  REQUIRE(r.status() == 200);
  CHECK(r.head.get("Content-Type").find("text/plain; version=0.0.4") == 0);
  lp::test::PromExposition e = parse_prom_text(r.body);
  for (const auto& p : e.problems) FAIL_CHECK("/metrics: " << p);
  return e;
}

double metric(int admin_port, std::string_view name, const lp::test::PromLabelSet& labels = {}) {
  const auto e = scrape(admin_port);
  return prom_value(e, name, labels).value_or(-1);
}

// Polls /metrics until `name{labels}` satisfies pred; the last value.
double await_metric(int admin_port, std::string_view name, const lp::test::PromLabelSet& labels,
                    const std::function<bool(double)>& pred, Ms timeout = 10000ms) {
  double v = -1;
  await_cond(
      [&] {
        v = metric(admin_port, name, labels);
        return pred(v);
      },
      timeout);
  return v;
}

// An exchange is counted when it ends, just after its last byte went to the client: a client
// that has its answer may scrape before the count. So every expected value is awaited.
void expect_metric(int admin_port, std::string_view name, const lp::test::PromLabelSet& labels,
                   double expected) {
  CAPTURE(name);
  CHECK(await_metric(admin_port, name, labels, [&](double v) { return v == expected; }) ==
        expected);
}

int run_cli(const std::vector<std::string>& args, std::string* output = nullptr) {
  ChildProcess p(bin_dir() + "/logging-proxy", args, child_opts("cli"));
  REQUIRE(p.wait_exit(20000ms));
  if (output) {
    for (const auto& l : p.lines()) *output += l + "\n";
  }
  return p.exit_code().value_or(-1);
}

}  // namespace

TEST_CASE("admin: /metrics is valid Prometheus text and its counters move") {
  MockUpstream mock;
  // A 1 MiB queue and no spool with the log server unreachable: captures fill the queue and
  // the next exchanges are truncated.
  Proxy proxy(admin_config(mock.http_port(), ", queue_bytes: 1MiB, spool_max_bytes: 0"));
  const int admin = admin_port_of(proxy.process());

  const auto before = scrape(admin);
  CHECK(prom_value(before, "logging_proxy_open_streams") == 0);
  bool build_info = false;
  for (const auto& f : before.families) {
    if (f.name == "logging_proxy_build_info") {
      build_info = f.samples.size() == 1 && f.samples[0].value == 1;
    }
  }
  CHECK(build_info);

  for (int i = 0; i < 3; ++i) CHECK(http_get(proxy.port(), "/mock/echo").status() == 200);
  CHECK(http_get(proxy.port(), "/nowhere").status() == 404);
  expect_metric(admin, "logging_proxy_requests_total",
                {{"route", "mock"}, {"method", "GET"}, {"status_class", "2xx"}}, 3);
  expect_metric(admin, "logging_proxy_requests_total",
                {{"route", ""}, {"method", "GET"}, {"status_class", "4xx"}}, 1);
  expect_metric(admin, "logging_proxy_exchanges_total", {{"outcome", "complete"}}, 4);
  expect_metric(admin, "logging_proxy_request_duration_seconds_count", {}, 4);
  expect_metric(admin, "logging_proxy_upstream_headers_seconds_count", {}, 3);
  expect_metric(admin, "logging_proxy_exchanges_in_flight", {}, 0);
  CHECK(metric(admin, "logging_proxy_upstream_connections_opened_total") >= 1);

  // An open event stream is counted while it is relayed.
  RawConn sse(proxy.port());
  REQUIRE(sse.send_all(make_request("GET", "/mock/sse?n=2&ms=100&first_ms=0&hold=1", 0)));
  auto head = sse.read_head(5000ms);
  REQUIRE(head);
  CHECK(await_metric(admin, "logging_proxy_open_streams", {}, [](double v) { return v == 1; }) ==
        1);
  CHECK(metric(admin, "logging_proxy_exchanges_in_flight") == 1);
  REQUIRE(http_get(mock.http_port(), "/release").status() == 200);
  CHECK(sse.read_body(*head, "GET", 5000ms, [](std::string_view) { return true; }));
  CHECK(await_metric(admin, "logging_proxy_open_streams", {}, [](double v) { return v == 0; }) ==
        0);

  // The log server is unreachable: sends fail and it is reported down.
  CHECK(await_metric(admin, "logging_proxy_batch_send_failures_total", {},
                     [](double v) { return v >= 1; }) >= 1);
  CHECK(metric(admin, "logging_proxy_log_server_up") == 0);

  // 4 MiB of request bodies into a 1 MiB queue that cannot drain (the batch held for the next
  // attempt counts against it too): truncations are counted.
  const std::string body(64 * 1024, 'x');
  for (int i = 0; i < 64; ++i) {
    CHECK(http_exchange(proxy.port(), make_request("POST", "/mock/echo", proxy.port(), {}, body),
                        "POST")
              .status() == 200);
  }
  expect_metric(admin, "logging_proxy_request_body_bytes_total", {}, 64.0 * 64 * 1024);
  auto full = scrape(admin);
  CHECK(prom_value(full, "logging_proxy_truncated_exchanges_total").value_or(0) >= 1);
  const double queued = prom_value(full, "logging_proxy_capture_queue_bytes").value_or(0);
  const std::optional<double> shipping = prom_value(full, "logging_proxy_capture_shipping_bytes");
  CHECK(queued > 512 * 1024);
  REQUIRE(shipping);
  // Within the bound, but for the end frames of the truncated exchanges (the reserve; each well
  // under 1 KiB).
  CHECK(queued + *shipping <= 1024 * 1024 + 64 * 1024);
  CHECK(*shipping > 0);
}

TEST_CASE("admin: spooling shows in /metrics, and healthz, readyz, 404 and 405 answers") {
  MockUpstream mock;
  Proxy proxy(admin_config(mock.http_port()));
  const int admin = admin_port_of(proxy.process());
  CHECK(http_get(proxy.port(), "/mock/echo").status() == 200);
  CHECK(await_metric(admin, "logging_proxy_spool_batches", {}, [](double v) { return v >= 1; }) >=
        1);
  CHECK(metric(admin, "logging_proxy_spool_bytes") > 0);
  CHECK(metric(admin, "logging_proxy_batches_spooled_total") >= 1);

  HttpResponse health = http_get(admin, "/healthz");
  CHECK(health.status() == 200);
  CHECK(health.body == "ok\n");
  HttpResponse ready = http_get(admin, "/readyz");
  CHECK(ready.status() == 200);  // the log server is down, but captures spool: still ready
  CHECK(ready.body.find("ready\n") == 0);
  CHECK(ready.body.find("unreachable (captures spool)") != std::string::npos);
  HttpResponse missing = http_get(admin, "/requests");
  CHECK(missing.status() == 404);
  CHECK(missing.body.find("/metrics") != std::string::npos);
  HttpResponse wrong = http_exchange(admin, make_request("POST", "/metrics", admin), "POST");
  CHECK(wrong.status() == 405);
  CHECK(wrong.head.get("Allow") == "GET, HEAD");
  HttpResponse get_reload = http_get(admin, "/reload");
  CHECK(get_reload.status() == 405);
  CHECK(get_reload.head.get("Allow") == "POST");

  // Shutting down with a stream still open: not ready any more, still alive, until it ends.
  RawConn sse(proxy.port());
  REQUIRE(sse.send_all(make_request("GET", "/mock/sse?n=2&ms=50&first_ms=0&hold=1", 0)));
  auto sse_head = sse.read_head(5000ms);
  REQUIRE(sse_head);
  REQUIRE(proxy.process().send_signal(SIGTERM));
  int draining_status = 0;
  await_cond(
      [&] {
        RawConn c(admin);
        auto r = c.exchange(make_request("GET", "/readyz", admin), "GET", 2000ms);
        draining_status = r ? r->status() : 0;
        return draining_status == 503;
      },
      5000ms);
  CHECK(draining_status == 503);
  CHECK(http_get(admin, "/healthz").status() == 200);
  REQUIRE(http_get(mock.http_port(), "/release").status() == 200);
  CHECK(sse.read_body(*sse_head, "GET", 5000ms, [](std::string_view) { return true; }));
  CHECK(proxy.process().wait_exit(10000ms));

  // The proxied listener keeps every path for the routes: /metrics there goes upstream.
  Proxy catch_all(admin_config(mock.http_port(), "", {{"all", "/"}}));
  HttpResponse proxied = http_get(catch_all.port(), "/metrics");
  CHECK(proxied.status() == 404);
  CHECK(proxied.body.find("mock_upstream: no endpoint /metrics") != std::string::npos);
}

TEST_CASE("process: each of the proxy's threads is named for what it does") {
  Proxy proxy(
      "server: {host: \"127.0.0.1\", port: 0, admin_port: 0, threads: 2}\n"
      "logging: {server_url: \"http://127.0.0.1:9\", spool_dir: spool}\n" +
      routes_yaml({{"mock", "/mock/"}}, unused_port()));
  admin_port_of(proxy.process());
  // In thread_names()'s order; "logging-proxy" is the main thread, which keeps the process's name.
  const std::vector<std::string> want = {"logging-proxy", "lp-admin",  "lp-console", "lp-loop-0",
                                         "lp-loop-1",     "lp-send-0", "lp-send-1",  "lp-send-2",
                                         "lp-ship",       "signals"};
  std::vector<std::string> names;
  // The capture threads start, and name themselves, beside the listeners: awaited, not raced.
  await_cond(
      [&] {
        names = proxy.process().thread_names();
        return names == want;
      },
      10000ms);
  CHECK(names == want);
}

TEST_CASE("admin: off unless admin_port is set, and healthcheck exits 0, 1 and 2") {
  MockUpstream mock;
  TempDir dir;
  Proxy plain(
      "server: {host: \"127.0.0.1\", port: 0}\n"
      "logging: {server_url: \"http://127.0.0.1:9\", spool_dir: spool}\n" +
      routes_yaml({{"mock", "/mock/"}}, mock.http_port()));
  CHECK(http_get(plain.port(), "/mock/echo").status() == 200);
  CHECK_FALSE(plain.process().find_line(std::regex("admin on"), 0ms));
  std::string out;
  CHECK(run_cli({"healthcheck", "--config", plain.config_path()}, &out) == 2);
  CHECK(out.find("sets no server.admin_port") != std::string::npos);

  // A config naming the running proxy's admin port.
  Proxy proxy(admin_config(mock.http_port()));
  const int admin = admin_port_of(proxy.process());
  const std::string named = dir.file("named.yaml");
  write_file(named, "server: {host: \"127.0.0.1\", admin_port: " + std::to_string(admin) + "}\n");
  CHECK(run_cli({"healthcheck", "--config", named}) == 0);

  const std::string closed = dir.file("closed.yaml");
  write_file(closed,
             "server: {host: \"127.0.0.1\", admin_port: " + std::to_string(unused_port()) + "}\n");
  out.clear();
  const auto t0 = Clock::now();
  CHECK(run_cli({"healthcheck", "--config", closed, "--timeout", "2s"}, &out) == 1);
  CHECK(ms_since(t0) < 10000);
  CHECK(out.find("connection refused") != std::string::npos);
}

TEST_CASE("reload: routes switch under load, streams and requests in flight finish, none fail") {
  const int kStreams = 200;
  REQUIRE(raise_fd_limit(4096) >= 1024);
  MockUpstream mock(nullptr, {"--threads", std::to_string(kStreams + 64)});
  Proxy proxy(admin_config(mock.http_port(), "", {{"keep", "/keep/"}, {"old", "/old/"}}));
  const int admin = admin_port_of(proxy.process());
  const int port = proxy.port();

  // Streams on the route that goes away: each sends one event and holds until /release.
  std::vector<std::unique_ptr<RawConn>> streams;
  std::vector<ResponseHead> heads;
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(std::make_unique<RawConn>(port));
    REQUIRE(streams.back()->send_all(
        make_request("GET", "/old/sse?n=3&ms=50&first_ms=0&hold=1&k=" + std::to_string(i), port)));
  }
  for (auto& s : streams) {
    auto h = s->read_head(10000ms);
    REQUIRE(h);
    REQUIRE(h->status == 200);
    heads.push_back(*h);
  }
  // A slow request on the old route, in flight across the reload.
  RawConn slow(port);
  REQUIRE(slow.send_all(make_request("GET", "/old/slow?ms=1500", port)));

  // A request loop on the route both configs have: keep-alive and fresh connections.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::string first_failure;
  std::thread loop([&] {
    std::unique_ptr<RawConn> c;
    for (int i = 0; !stop && i < 100000; ++i) {
      if (!c || i % 4 == 0) c = std::make_unique<RawConn>(port);
      auto r = c->exchange(make_request("GET", "/keep/echo?i=" + std::to_string(i), port), "GET",
                           5000ms);
      if (r && r->complete && r->status() == 200) {
        ++ok;
      } else {
        if (failed++ == 0) first_failure = r ? r->head.describe() : "no answer";
        c.reset();
      }
    }
  });
  await_cond([&] { return ok > 50; }, 10000ms);

  // SIGHUP with the new routes: "old" goes, "new" comes.
  write_file(proxy.config_path(),
             admin_config(mock.http_port(), "", {{"keep", "/keep/"}, {"new", "/new/"}}));
  const size_t mark = proxy.process().line_count();
  REQUIRE(proxy.process().send_signal(SIGHUP));
  proxy.process().wait_for_line(std::regex(R"(\[proxy\] SIGHUP: reloaded .*: 2 routes)"), 10000ms,
                                mark);
  CHECK(http_get(port, "/new/echo").status() == 200);
  CHECK(http_get(port, "/old/echo").status() == 404);

  // A broken file changes nothing and is reported: console, counter, POST /reload answer.
  write_file(proxy.config_path(), "server: [\n");
  HttpResponse refused = http_exchange(admin, make_request("POST", "/reload", admin), "POST");
  CHECK(refused.status() == 422);
  CHECK(refused.body.find("reload refused, the running configuration stays: ") == 0);
  CHECK(refused.body.find("config.yaml:") != std::string::npos);
  std::string out;
  CHECK(run_cli({"reload", "--config", proxy.config_path()}, &out) == 2);  // unreadable config
  CHECK(metric(admin, "logging_proxy_config_reload_failures_total") == 1);
  CHECK(proxy.process().find_line(std::regex(R"(POST /reload: reload refused)"), 5000ms, mark));
  CHECK(http_get(port, "/new/echo").status() == 200);

  // A listener change needs a restart: refused as a whole, named.
  write_file(proxy.config_path(),
             "server: {host: \"127.0.0.1\", port: 1, admin_port: " + std::to_string(admin) +
                 "}\nlogging: {server_url: \"http://127.0.0.1:9\", spool_dir: spool}\n" +
                 routes_yaml({{"keep", "/keep/"}}, mock.http_port()));
  out.clear();
  CHECK(run_cli({"reload", "--config", proxy.config_path()}, &out) == 1);
  CHECK(out.find("server.port (0 -> 1)") != std::string::npos);
  CHECK(out.find("server.admin_port (0 -> " + std::to_string(admin) + ")") != std::string::npos);
  CHECK(http_get(port, "/new/echo").status() == 200);

  // `logging-proxy reload` with a good file (admin_port 0 in the running config: use POST).
  write_file(proxy.config_path(),
             admin_config(mock.http_port(), "", {{"keep", "/keep/"}, {"third", "/third/"}}));
  HttpResponse applied = http_exchange(admin, make_request("POST", "/reload", admin), "POST");
  CHECK(applied.status() == 200);
  CHECK(http_get(port, "/third/echo").status() == 200);
  CHECK(http_get(port, "/new/echo").status() == 404);
  CHECK(metric(admin, "logging_proxy_config_reloads_total") == 2);

  stop = true;
  loop.join();
  MESSAGE(ok.load() << " requests during the reloads, " << failed.load() << " failed");
  CHECK_MESSAGE(failed == 0, first_failure);
  CHECK(ok > 50);

  // Everything that started on the old route finishes on it.
  auto slow_r = slow.read_response("GET", 10000ms);
  REQUIRE(slow_r);
  CHECK(slow_r->status() == 200);
  CHECK(slow_r->body == "slow done");
  REQUIRE(http_get(mock.http_port(), "/release").status() == 200);
  int complete = 0;
  for (size_t i = 0; i < streams.size(); ++i) {
    std::string body;
    const bool done = streams[i]->read_body(heads[i], "GET", 10000ms, [&](std::string_view d) {
      body += d;
      return true;
    });
    if (done && body.find("\"i\":2") != std::string::npos) ++complete;
  }
  CHECK(complete == kStreams);
  expect_metric(admin, "logging_proxy_open_streams", {}, 0);
}

TEST_CASE("console_format json: one object per exchange with the facts of the text lines") {
  MockUpstream mock;
  Proxy text(admin_config(mock.http_port()));
  Proxy json_proxy(admin_config(mock.http_port(), ", console_format: json"));
  const std::vector<std::pair<std::string, int>> calls = {
      {"/mock/status?code=200&key=sk-abcdefgh12345678", 200},
      {"/mock/status?code=503", 503},
      {"/nowhere", 404}};
  for (const auto& [target, status] : calls) {
    CHECK(http_get(text.port(), target).status() == status);
    CHECK(http_get(json_proxy.port(), target).status() == status);
  }
  std::vector<json> records;
  await_cond(
      [&] {
        records.clear();
        for (const auto& l : json_proxy.process().lines()) {
          if (l.empty() || l[0] != '{') continue;
          json j = json::parse(l, nullptr, false);
          REQUIRE_MESSAGE(!j.is_discarded(), l);
          if (j.contains("id")) records.push_back(j);
        }
        return records.size() == calls.size();
      },
      5000ms);
  REQUIRE(records.size() == calls.size());
  // A record is written when its exchange ends, on the loop that served it: the order of the
  // lines is not the order of the calls, so each call's record is found by its status.
  auto record_of = [&](int status) {
    for (const json& r : records) {
      if (r["status"] == status) return r;
    }
    FAIL("no record with status " << status);
    return json();
  };
  for (size_t i = 0; i < calls.size(); ++i) {
    const auto& [target, status] = calls[i];
    const json r = record_of(status);
    CAPTURE(r.dump());
    CHECK(r["method"] == "GET");
    CHECK(r["id"].get<std::string>().size() == 36);
    CHECK(r["time"].get<std::string>().back() == 'Z');
    CHECK(r["duration_ms"].is_number());
    CHECK(r["captured"] == true);
    CHECK(r["outcome"] == "complete");
    // The text proxy's end line for the same call carries the same status and byte count.
    const std::string end_line =
        " " + std::to_string(status) + " " + std::to_string(r["bytes"].get<uint64_t>()) + " bytes ";
    CHECK(text.process().find_line(std::regex(end_line), 1000ms));
  }
  CHECK(record_of(200)["path"] ==
        "/mock/status?code=200&key=****5678");  // credentials masked as in text
  CHECK(record_of(200)["route"] == "mock");
  CHECK(record_of(404)["route"] == "");
  CHECK(record_of(404)["destination"] == "");
  // Other lines are objects too (the shipper's "unreachable" line).
  CHECK(json_proxy.process().find_line(std::regex(R"(^\{"time":"[^"]+","message":"\[capture\])"),
                                       5000ms));
  for (const auto& l : json_proxy.process().lines()) {
    if (l.rfind("logging-proxy ", 0) == 0) continue;  // the startup lines on stdout
    CHECK_MESSAGE(!json::parse(l, nullptr, false).is_discarded(), l);
  }
}
