// `log-server healthcheck` and `logging-proxy healthcheck`: one GET of a health endpoint, for
// container health checks (the runtime image has no curl). run_healthcheck() resolves the host,
// connects, sends "GET path HTTP/1.1" (Host, Connection: close) and reads the status line;
// 200 means healthy. The body is not read.
//
// Bound: everything (name resolution, connect, send, reading the head) shares one deadline,
// `timeout` after the call. A name lookup that outlives it keeps running on a detached thread
// (getaddrinfo cannot be interrupted); the call still returns in time.
//
// Thread-safety: no shared state; calls may run concurrently. Nothing throws: every failure
// is the return value plus one line on `err`.
#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <string_view>

#include "common/cli.h"

namespace lp {

inline constexpr std::chrono::milliseconds kDefaultHealthcheckTimeout{3000};

// GETs http://host:port/path. Returns 0 when it answers 200 within `timeout`; otherwise 1 after
// writing one line to `err`: "<program>: http://HOST:PORT/PATH: <cause>", the cause being e.g.
// "connection refused", "timed out after 3 s waiting for the answer" or "answered 404 Not
// Found". `host` is a name or an IP literal (IPv6 with or without brackets); "localhost" tries
// 127.0.0.1 and then ::1 without a lookup. `path` starts with '/'.
int run_healthcheck(std::string_view program, const std::string& host, int port,
                    std::string_view path, std::chrono::milliseconds timeout, std::ostream& err);

// The address to check a listener configured with `listen_host` on: a wildcard ("0.0.0.0",
// "", "::", "[::]") becomes the loopback of its family; anything else is kept, minus brackets.
std::string healthcheck_host(std::string_view listen_host);

// The command line of `PROGRAM healthcheck`: argv[first..argc) as parse_cli_args() takes them,
// plus `--timeout DURATION` (or `--timeout=DURATION`; lp::parse_duration syntax, > 0). --check
// is not an option here (kError). Pass `cli` to cli_exit_code() as usual.
struct HealthcheckArgs {
  CliArgs cli;
  std::chrono::milliseconds timeout = kDefaultHealthcheckTimeout;
};
HealthcheckArgs parse_healthcheck_args(int argc, const char* const* argv, int first);

}  // namespace lp
