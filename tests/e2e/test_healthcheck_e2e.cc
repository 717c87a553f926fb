// `log-server healthcheck` end to end: the real executable against a real log-server, a closed
// port, a server that answers /healthz with 404 (mock_upstream), a listener that never answers,
// and broken configs. Each run must end by itself within its timeout (plus start-up slack); the
// time it took is reported, not asserted beyond that generous bound.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/e2e/harness.h"
#include "tests/e2e/log_server_fixture.h"
#include "tests/support/silent_listener.h"

using namespace e2e;

namespace {

struct Outcome {
  int exit_code = -1;
  std::string output;
  double ms = 0;
};

// `log-server healthcheck ARGS`, waited for up to `timeout` + 2 s.
Outcome healthcheck(const std::vector<std::string>& args, Ms timeout) {
  std::vector<std::string> all{"healthcheck"};
  all.insert(all.end(), args.begin(), args.end());
  const auto t0 = Clock::now();
  ChildProcess p(bin_dir() + "/log-server", all, child_opts("healthcheck"));
  const bool exited = p.wait_exit(timeout + 2000ms);
  Outcome out;
  out.ms = ms_since(t0);
  // A pattern that never matches: waits until the output is closed, so every line is collected.
  p.find_line(std::regex("a^"), 2000ms);
  for (const std::string& line : p.lines()) out.output += line + "\n";
  REQUIRE_MESSAGE(exited, "healthcheck still running after " << out.ms << " ms:\n" << out.output);
  out.exit_code = p.exit_code().value_or(-1);
  std::string shown;
  for (const std::string& a : args) shown += " " + a;
  MESSAGE("healthcheck" << shown << " -> exit " << out.exit_code << " in " << out.ms
                        << " ms: " << out.output);
  return out;
}

std::string config_for(const TempDir& dir, const std::string& host, int port) {
  const std::string path = dir.file("healthcheck.yaml");
  write_file(path, "log_server:\n  host: \"" + host + "\"\n  port: " + std::to_string(port) +
                       "\n  data_dir: " + dir.file("unused") + "\n");
  return path;
}

}  // namespace

TEST_CASE("healthcheck: a running log server is healthy, on its host or a wildcard") {
  LogServer ls("  auth_token: healthcheck-token-0123456789abcdef\n");
  TempDir dir;
  // /healthz needs no token; 0.0.0.0 means "this machine" (the server is on 127.0.0.1).
  for (const std::string host : {"localhost", "127.0.0.1", "0.0.0.0"}) {
    CAPTURE(host);
    Outcome o = healthcheck({"--config", config_for(dir, host, ls.port())}, 3000ms);
    CHECK(o.exit_code == 0);
    CHECK(o.output.empty());  // a health log shows only failures
  }
}

TEST_CASE("healthcheck: a closed port is unhealthy") {
  TempDir dir;
  const int port = unused_port();
  Outcome o = healthcheck({"--config", config_for(dir, "127.0.0.1", port)}, 3000ms);
  CHECK(o.exit_code == 1);
  CHECK(o.output.find("http://127.0.0.1:" + std::to_string(port) + "/healthz") !=
        std::string::npos);
  CHECK(o.output.find("connection refused") != std::string::npos);
}

TEST_CASE("healthcheck: a server answering /healthz with 404 is unhealthy") {
  MockUpstream mock;
  TempDir dir;
  Outcome o = healthcheck({"--config", config_for(dir, "127.0.0.1", mock.http_port())}, 3000ms);
  CHECK(o.exit_code == 1);
  CHECK(o.output.find("answered 404") != std::string::npos);
}

TEST_CASE("healthcheck: a listener that never answers times out within --timeout") {
  lp::test::SilentListener silent;
  TempDir dir;
  Outcome o = healthcheck(
      {"--timeout", "500ms", "--config", config_for(dir, "127.0.0.1", silent.port())}, 500ms);
  CHECK(o.exit_code == 1);
  CHECK(o.output.find("timed out after 500 ms") != std::string::npos);
  CHECK(o.ms >= 450);  // it did wait for the answer
}

TEST_CASE("healthcheck: a bad config or bad arguments exit 2 with the reason") {
  TempDir dir;
  const std::string broken = dir.file("broken.yaml");
  write_file(broken, "log_server:\n  port: [1, 2\n");
  Outcome o = healthcheck({"--config", broken}, 3000ms);
  CHECK(o.exit_code == 2);
  CHECK(o.output.find("broken.yaml") != std::string::npos);

  Outcome missing = healthcheck({"--config", dir.file("missing.yaml")}, 3000ms);
  CHECK(missing.exit_code == 2);
  CHECK(missing.output.find("missing.yaml") != std::string::npos);

  // Port 0 means "a free port chosen at start": nothing to check.
  Outcome zero = healthcheck({"--config", config_for(dir, "127.0.0.1", 0)}, 3000ms);
  CHECK(zero.exit_code == 2);
  CHECK(zero.output.find("log_server.port") != std::string::npos);

  Outcome bad_timeout = healthcheck({"--timeout", "soon"}, 3000ms);
  CHECK(bad_timeout.exit_code == 2);
  CHECK(bad_timeout.output.find("--timeout") != std::string::npos);

  Outcome unknown = healthcheck({"--verbose"}, 3000ms);
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.output.find("--verbose") != std::string::npos);
}
