// logging-proxy: the command line. Loads and validates the config, starts the listener,
// and turns SIGINT/SIGTERM into a graceful shutdown.

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "common/cli.h"
#include "common/config.h"
#include "common/termination_signals.h"
#include "proxy/capture_queue.h"
#include "proxy/capture_tee.h"
#include "proxy/console_log.h"
#include "proxy/forwarder.h"
#include "proxy/proxy_server.h"
#include "proxy/replay_command.h"
#include "proxy/router.h"
#include "proxy/shipper.h"

#ifndef LP_VERSION
#define LP_VERSION "0.0.0"
#endif

namespace {

constexpr const char* kUsage = R"(Usage: logging-proxy [--config FILE] [--check]
       logging-proxy replay ID [--config FILE] [--to URL] [--from URL] [--header 'K: V']...
       logging-proxy --help | --version

A streaming reverse proxy for LLM APIs that forwards every call untouched and
captures it for the log server.

Commands:
  replay ID       re-send a captured request through the proxy (see 'replay --help')

Options:
  --config FILE   configuration file (default: config.yaml in the working directory)
  --check         validate the configuration, print what would run, and exit
                  (0 when valid, 2 with the problem otherwise)
  --help          show this help
  --version       show the version

Signals: SIGINT/SIGTERM stop accepting, let in-flight exchanges finish (up to
10 s), ship or spool their captures (up to 5 s), and exit 0.
)";

// "file:line: route 'name': problem" for a route the router rejected.
std::string route_error(const lp::Config& config, const lp::RouteError& e) {
  std::string where = config.source;
  for (const auto& r : config.routes) {
    if (r.name == e.route() && r.line > 0) where += ":" + std::to_string(r.line);
  }
  return where + ": route '" + e.route() + "': " + e.what();
}

void describe(const lp::Config& config, std::ostream& out) {
  out << "proxy: http://" << config.server.host << ":" << config.server.port << "\n";
  out << "log server: " << config.logging.server_url
      << (config.logging.default_capture ? " (unknown routes captured)" : "") << "\n";
  out << "routes (" << config.routes.size() << "):\n";
  for (const auto& r : config.routes) {
    out << "  " << r.name << ": " << r.pattern << " -> " << r.destination.to_string()
        << (config.captures(&r) ? " [log]" : "")
        << (r.insecure_skip_verify ? " (TLS verification OFF)" : "") << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "replay") return lp::run_replay(argc, argv);
  const lp::CliArgs args = lp::parse_cli_args(argc, argv);
  if (int code = lp::cli_exit_code(args, "logging-proxy", kUsage, LP_VERSION); code >= 0)
    return code;
  const std::string& config_path = args.config_path;
  const bool check = args.check;

  lp::Config config;
  try {
    config = lp::load_config_file(config_path);
  } catch (const lp::ConfigError& e) {
    std::cerr << "logging-proxy: " << e.what() << "\n";
    return 2;
  }

  lp::TerminationSignals signals;  // before any thread starts

  lp::ConsoleLog console(config.logging.console && !check);
  lp::CaptureQueue capture_queue(config.logging.queue_bytes);
  // Headers the proxy injects (provider keys) are masked in captures like credentials.
  std::vector<std::string> redact_names = config.logging.redact_headers;
  for (const auto& r : config.routes) {
    for (const auto& h : r.headers) redact_names.push_back(h.first);
  }
  lp::CaptureTee capture(capture_queue, lp::Redactor(config.logging.redact, redact_names));
  std::unique_ptr<lp::Forwarder> forwarder;
  try {
    forwarder = std::make_unique<lp::Forwarder>(config, console, &capture);
  } catch (const lp::RouteError& e) {
    std::cerr << "logging-proxy: " << route_error(config, e) << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "logging-proxy: " << config.source << ": " << e.what() << "\n";
    return 2;
  }
  // Warnings go to stderr in --check mode too, so a config can be vetted before it runs.
  for (const auto& r : config.routes) {
    if (r.insecure_skip_verify && r.destination.tls()) {
      std::cerr << "WARNING: route '" << r.name
                << "': insecure_skip_verify is on: TLS certificates of " << r.destination.origin()
                << " are NOT verified; anyone on the path can read and alter this traffic.\n";
    }
  }

  if (!lp::is_loopback_host(config.server.host)) {
    bool injects = false;
    for (const auto& r : config.routes) injects = injects || !r.headers.empty();
    std::cerr << "WARNING: logging-proxy listens on " << config.server.host
              << ": anyone who can reach this port can send requests through every route"
              << (injects ? ", with the credentials your routes inject," : "")
              << " and their traffic is captured. Use server.host: localhost unless this is "
                 "intended and the port is firewalled.\n";
  }

  if (check) {
    std::cout << config.source << ": OK\n";
    describe(config, std::cout);
    return 0;
  }

  std::unique_ptr<lp::Shipper> shipper;
  try {
    shipper = std::make_unique<lp::Shipper>(config, capture_queue, capture, console);
  } catch (const std::exception& e) {
    std::cerr << "logging-proxy: " << e.what() << "\n";
    return 1;
  }

  lp::ProxyServer server(config, *forwarder, console);
  try {
    server.bind();
  } catch (const std::exception& e) {
    std::cerr << "logging-proxy: " << e.what() << "\n";
    return 1;
  }
  shipper->start();
  std::printf("logging-proxy listening on %s\n", server.url().c_str());
  std::fflush(stdout);

  signals.start([&](const char* name) {
    console.line(std::string("[proxy] ") + name + ": shutting down");
    server.shutdown();
  });
  server.run();
  // In-flight exchanges are done; ship what they captured (or spool it) before exiting.
  shipper->stop(std::chrono::seconds(5));
  signals.stop();
  console.line("[proxy] stopped");
  console.flush();
  return 0;
}
