// Fuzz target: the YAML config loader (lp::parse_config). Its contract: any input either loads
// or throws lp::ConfigError with a one-line message naming the file. Any other exception escapes
// this function (libFuzzer reports it), and so does a crash, a hang or a leak.
//
// Note: a fuzzed `ca_file` makes the loader open that path (as it does at startup); run the
// target with stdin redirected from /dev/null.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "common/ascii.h"
#include "common/config.h"
#include "common/host_pattern.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    lp::Config config = lp::parse_config(text, "fuzz.yaml");
    // Defaults and parsed values keep the invariants the processes rely on.
    FUZZ_CHECK(config.server.port >= 0 && config.server.port <= 65535);
    FUZZ_CHECK(config.log_server.port >= 0 && config.log_server.port <= 65535);
    FUZZ_CHECK(!config.server.not_found.empty() && config.server.not_found.front() == '/');
    for (const auto& r : config.routes) {
      FUZZ_CHECK(!r.name.empty() && !r.pattern.empty());
      FUZZ_CHECK(r.destination.scheme == "http" || r.destination.scheme == "https");
      if (r.upstream_proxy && !r.upstream_proxy->empty()) {
        FUZZ_CHECK(lp::ascii_istarts_with(*r.upstream_proxy, "http://") ||
                   lp::ascii_istarts_with(*r.upstream_proxy, "socks5://"));
      }
    }
    const lp::ForwardProxyConfig& fp = config.forward_proxy;
    for (const auto* list : {&fp.intercept, &fp.exclude, &std::as_const(config.server.no_proxy)}) {
      for (const std::string& p : *list) FUZZ_CHECK(!lp::host_pattern_problem(p));
    }
    for (const auto& u : fp.users) {
      FUZZ_CHECK(!u.name.empty() && u.name.find(':') == std::string::npos);
      FUZZ_CHECK(u.password_sha256.empty() != u.password_env.empty());
      FUZZ_CHECK(u.password_sha256.empty() || u.password_sha256.size() == 64);
    }
    FUZZ_CHECK(!fp.ca_dir.empty());
  } catch (const lp::ConfigError& e) {
    const std::string msg = e.what();
    FUZZ_CHECK(msg.rfind("fuzz.yaml", 0) == 0);       // names the file first
    FUZZ_CHECK(msg.find('\n') == std::string::npos);  // one line
  }
  return 0;
}
