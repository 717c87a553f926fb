// The admin listener's pure parts: which endpoint answers what, the metrics' text (checked by
// the Prometheus text checker), and which config changes a reload refuses.

#include <doctest/doctest.h>

#include "common/config.h"
#include "common/prometheus_text.h"
#include "proxy/admin_server.h"
#include "proxy/generation.h"
#include "proxy/proxy_metrics.h"
#include "tests/support/prom_text.h"

using namespace std::chrono_literals;

namespace {

lp::RequestHead head(std::string method, std::string target) {
  lp::RequestHead h;
  h.method = std::move(method);
  h.target = std::move(target);
  h.minor_version = 1;
  return h;
}

}  // namespace

TEST_CASE("admin_dispatch: endpoints, methods, 404 and 405 with Allow") {
  int reloads = 0;
  const lp::AdminHandlers handlers{[] { return std::string("# metrics\n"); },
                                   [] {
                                     return lp::AdminResponse{200, "text/plain", "ready\n", ""};
                                   },
                                   [&] {
                                     ++reloads;
                                     return lp::AdminResponse{200, "text/plain", "reloaded\n", ""};
                                   }};
  struct Case {
    const char* method;
    const char* target;
    int status;
    const char* body_start;
    const char* allow;
  };
  const Case cases[] = {
      {"GET", "/metrics", 200, "# metrics", ""},
      {"HEAD", "/metrics", 200, "# metrics", ""},
      {"GET", "/metrics?x=1", 200, "# metrics", ""},
      {"GET", "/healthz", 200, "ok", ""},
      {"GET", "/readyz", 200, "ready", ""},
      {"POST", "/reload", 200, "reloaded", ""},
      {"POST", "/metrics", 405, "method not allowed: use GET, HEAD", "GET, HEAD"},
      {"DELETE", "/healthz", 405, "method not allowed", "GET, HEAD"},
      {"PUT", "/readyz", 405, "method not allowed", "GET, HEAD"},
      {"GET", "/reload", 405, "method not allowed: use POST", "POST"},
      {"GET", "/", 404, "no admin endpoint /", ""},
      {"GET", "/metrics/", 404, "no admin endpoint /metrics/", ""},
      {"GET", "/requests", 404, "no admin endpoint /requests (there are GET /metrics", ""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.method);
    CAPTURE(c.target);
    const lp::AdminResponse r = lp::admin_dispatch(head(c.method, c.target), handlers);
    CHECK(r.status == c.status);
    CHECK(r.body.rfind(c.body_start, 0) == 0);
    CHECK(r.allow == c.allow);
  }
  CHECK(reloads == 1);  // only POST /reload reloads
}

TEST_CASE("ProxyMetrics: the rendered text is valid and carries what was counted") {
  lp::ProxyMetrics m;
  lp::RouteRequestCounters* chat = m.route("chat");
  CHECK(m.route("chat") == chat);  // one set per name, stable
  lp::RouteRequestCounters* none = m.route("");
  chat->count("POST", 200);
  chat->count("POST", 201);
  chat->count("POST", 503);
  chat->count("BREW", 418);  // an unknown method counts as "other"
  none->count("GET", 404);
  none->count("GET", 0);                                      // no answer sent
  m.request_duration.observe(std::chrono::microseconds(30));  // first bucket
  m.request_duration.observe(std::chrono::milliseconds(3));   // 0.005
  m.request_duration.observe(std::chrono::minutes(20));       // +Inf only
  m.open_streams = 2;
  lp::PromText out;
  m.render(out);
  const auto e = lp::test::parse_prom_text(out.text());
  for (const auto& p : e.problems) FAIL_CHECK(p);
  using lp::test::prom_value;
  const char* requests = "logging_proxy_requests_total";
  CHECK(prom_value(e, requests, {{"route", "chat"}, {"method", "POST"}, {"status_class", "2xx"}}) ==
        2);
  CHECK(prom_value(e, requests, {{"route", "chat"}, {"method", "POST"}, {"status_class", "5xx"}}) ==
        1);
  CHECK(prom_value(e, requests,
                   {{"route", "chat"}, {"method", "other"}, {"status_class", "4xx"}}) == 1);
  CHECK(prom_value(e, requests, {{"route", ""}, {"method", "GET"}, {"status_class", "none"}}) == 1);
  CHECK_FALSE(
      prom_value(e, requests, {{"route", "chat"}, {"method", "GET"}, {"status_class", "2xx"}})
          .has_value());  // zero series are left out
  const char* h = "logging_proxy_request_duration_seconds_bucket";
  CHECK(prom_value(e, h, {{"le", "5e-05"}}) == 1);
  CHECK(prom_value(e, h, {{"le", "0.0025"}}) == 1);
  CHECK(prom_value(e, h, {{"le", "0.005"}}) == 2);
  CHECK(prom_value(e, h, {{"le", "600"}}) == 2);
  CHECK(prom_value(e, h, {{"le", "+Inf"}}) == 3);
  CHECK(prom_value(e, "logging_proxy_request_duration_seconds_count") == 3);
  const double sum = prom_value(e, "logging_proxy_request_duration_seconds_sum").value_or(0);
  CHECK(sum == doctest::Approx(1200.00303).epsilon(1e-9));
  CHECK(prom_value(e, "logging_proxy_open_streams") == 2);
}

TEST_CASE("PromText: label values and help text are escaped") {
  lp::PromText out;
  out.family("x_total", "counter", "a \\ help\nline");
  out.sample("x_total", {{"route", "a\"b\\c\nd"}}, uint64_t{1});
  CHECK(out.text() ==
        "# HELP x_total a \\\\ help\\nline\n# TYPE x_total counter\n"
        "x_total{route=\"a\\\"b\\\\c\\nd\"} 1\n");
  const auto e = lp::test::parse_prom_text(out.text());
  CHECK(e.problems.empty());
  CHECK(lp::test::prom_value(e, "x_total", {{"route", "a\"b\\c\nd"}}) == 1);
  CHECK(lp::prom_number(0.25) == "0.25");
  CHECK(lp::prom_number(1e300 * 1e300) == "+Inf");
}

TEST_CASE("restart_only_changes: what a reload must refuse, named with both values") {
  const lp::Config base = lp::parse_config(
      "server: {port: 5601, admin_port: 5602}\n"
      "routes:\n  a: {pattern: \"/a/\", destination: \"http://127.0.0.1:1/\"}\n",
      "c.yaml");
  struct Case {
    const char* yaml;
    const char* expected;  // "" = nothing that needs a restart
  };
  const Case cases[] = {
      {"server: {port: 5601, admin_port: 5602}\n", ""},
      // Request-level settings switch: routes, timeouts, redaction, capture defaults.
      {"server: {port: 5601, admin_port: 5602, upstream_timeout: 1s, header_timeout: 2s,"
       " idle_timeout: 3s, max_header_bytes: 2KiB, max_request_body_bytes: 1MiB}\n"
       "logging: {redact: false, default: false, redact_headers: [X-Key]}\n"
       "routes:\n  b: {pattern: \"/b/\", destination: \"https://example.com/\"}\n",
       ""},
      {"server: {port: 5603, admin_port: 5602}\n", "server.port (5601 -> 5603)"},
      {"server: {host: 0.0.0.0, port: 5601, admin_port: 5602}\n",
       "server.host (\"localhost\" -> \"0.0.0.0\")"},
      {"server: {port: 5601}\n", "server.admin_port (5602 -> unset)"},
      {"server: {port: 5601, admin_port: 5602, threads: 4}\n", "server.threads (0 -> 4)"},
      {"server: {port: 5601, admin_port: 5602, max_connections: 5}\n",
       "server.max_connections (10000 -> 5)"},
      {"server: {port: 5601, admin_port: 5602}\nlogging: {console_format: json}\n",
       "logging.console_format (text -> json)"},
      {"server: {port: 5601, admin_port: 5602}\nlogging: {server_url: \"http://x:1\"}\n",
       "logging.server_url (\"http://localhost:8080\" -> \"http://x:1\")"},
      {"server: {port: 5601, admin_port: 5602}\nlogging: {spool_dir: s2}\n",
       "logging.spool_dir (\"spool\" -> \"s2\")"},
      {"server: {port: 5601, admin_port: 5602}\nlogging: {batch_interval: 1s}\n",
       "logging.batch_interval (100ms -> 1000ms)"},
      {"server: {port: 5601, admin_port: 5602}\nlogging: {console: false}\n",
       "logging.console (true -> false)"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.yaml);
    const auto changes = lp::restart_only_changes(base, lp::parse_config(c.yaml, "c.yaml"));
    if (std::string(c.expected).empty()) {
      CHECK(changes.empty());
    } else {
      REQUIRE(changes.size() == 1);
      CHECK(changes[0] == c.expected);
    }
  }
}
