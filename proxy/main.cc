// logging-proxy: the command line. Loads and validates the config, starts the listener,
// and turns SIGINT/SIGTERM into a graceful shutdown.

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "common/cli.h"
#include "common/config.h"
#include "common/prometheus_text.h"
#include "common/termination_signals.h"
#include "proxy/admin_command.h"
#include "proxy/admin_server.h"
#include "proxy/ca_command.h"
#include "proxy/capture_queue.h"
#include "proxy/capture_tee.h"
#include "proxy/console_log.h"
#include "proxy/forwarder.h"
#include "proxy/proxy_metrics.h"
#include "proxy/proxy_server.h"
#include "proxy/reloader.h"
#include "proxy/replay_command.h"
#include "proxy/shipper.h"

#ifndef LP_VERSION
#define LP_VERSION "0.0.0"
#endif

namespace {

constexpr const char* kUsage = R"(Usage: logging-proxy [--config FILE] [--check]
       logging-proxy replay ID [--config FILE] [--to URL] [--from URL] [--header 'K: V']...
       logging-proxy reload [--config FILE]
       logging-proxy healthcheck [--config FILE] [--timeout DURATION]
       logging-proxy ca init|export [--config FILE]
       logging-proxy --help | --version

A streaming reverse proxy for LLM APIs that forwards every call untouched and
captures it for the log server.

Commands:
  replay ID       re-send a captured request through the proxy (see 'replay --help')
  reload          make the running proxy read its config again (admin listener)
  healthcheck     exit 0 when the running proxy's admin /healthz answers 200
  ca init         make the forward proxy's local CA (forward_proxy.ca_dir)
  ca export       print its certificate and how to make clients trust it

Options:
  --config FILE   configuration file (default: config.yaml in the working directory)
  --check         validate the configuration, print what would run, and exit
                  (0 when valid, 2 with the problem otherwise)
  --help          show this help
  --version       show the version

Signals: SIGINT/SIGTERM stop accepting, let in-flight exchanges finish (up to
10 s), ship or spool their captures (up to 5 s), and exit 0. SIGHUP reloads the
config (as 'reload' does).
)";

void describe(const lp::Config& config, std::ostream& out) {
  out << "proxy: http://" << config.server.host << ":" << config.server.port << "\n";
  if (config.server.admin_port) {
    out << "admin: http://" << config.server.admin_host << ":" << *config.server.admin_port
        << " (/metrics /healthz /readyz /reload)\n";
  }
  out << "log server: " << config.logging.server_url
      << (config.logging.default_capture ? " (unknown routes captured)" : "") << "\n";
  out << "routes (" << config.routes.size() << "):\n";
  for (const auto& r : config.routes) {
    out << "  " << r.name << ": " << r.pattern << " -> " << r.destination.to_string()
        << (config.captures(&r) ? " [log]" : "")
        << (r.insecure_skip_verify ? " (TLS verification OFF)" : "") << "\n";
  }
}

std::string render_metrics(const lp::ProxyMetrics& metrics, const lp::ProxyServer& server,
                           const lp::CaptureQueue& queue, const lp::CaptureCounters& cc,
                           const lp::Shipper& shipper) {
  auto load = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  lp::PromText out;
  metrics.render(out);
  out.gauge("logging_proxy_open_connections", "Client connections open now.",
            static_cast<int64_t>(server.open_connections()));
  out.gauge("logging_proxy_upstream_idle_connections",
            "Upstream connections idle in the pools, ready for reuse.",
            server.idle_upstream_connections());
  out.counter("logging_proxy_captured_exchanges_total", "Exchanges captured (begun).",
              load(cc.exchanges));
  out.counter("logging_proxy_truncated_exchanges_total",
              "Captured exchanges cut short because the capture queue and the spool were full.",
              load(cc.truncated));
  out.counter("logging_proxy_unrecorded_exchanges_total",
              "Truncated exchanges the log server never hears of: their end frame found the "
              "capture queue's reserve full too.",
              load(cc.unrecorded));
  out.gauge("logging_proxy_capture_queue_bytes", "Capture frames waiting in memory, in bytes.",
            static_cast<int64_t>(queue.bytes()));
  out.gauge("logging_proxy_capture_shipping_bytes",
            "Capture memory the shipper holds: batches being cut, sent or re-sent, in bytes. "
            "With the queue's, bounded by logging.queue_bytes.",
            static_cast<int64_t>(queue.outside()));
  const lp::ShipperCounters& sc = shipper.counters();
  out.gauge("logging_proxy_spool_batches", "Capture batches waiting in the spool on disk.",
            static_cast<int64_t>(load(sc.spool_batches)));
  out.gauge("logging_proxy_spool_bytes", "Bytes of the capture batches in the spool.",
            static_cast<int64_t>(load(sc.spool_bytes)));
  out.gauge("logging_proxy_batches_in_flight",
            "Capture batches sent to the log server and not answered yet.",
            static_cast<int64_t>(load(sc.batches_in_flight)));
  out.counter("logging_proxy_batches_sent_total", "Capture batches the log server took.",
              load(sc.batches_sent));
  out.counter("logging_proxy_batches_spooled_total", "Capture batches written to the spool.",
              load(sc.batches_spooled));
  out.counter("logging_proxy_batches_overflowed_total",
              "Capture batches spooled because the memory queue passed its high-water mark.",
              load(sc.batches_overflowed));
  out.counter("logging_proxy_batches_rejected_total",
              "Capture batches the log server refused as invalid (dropped, not retried).",
              load(sc.batches_rejected));
  out.counter("logging_proxy_batch_send_failures_total",
              "POSTs to the log server that failed (unreachable or not 2xx); retried.",
              load(sc.send_failures));
  const auto state = sc.log_server.load();
  out.gauge("logging_proxy_log_server_up",
            "1 when the last POST to the log server got an answer, 0 when it failed, -1 before "
            "the first.",
            state == lp::ShipperCounters::LogServer::kReachable     ? 1
            : state == lp::ShipperCounters::LogServer::kUnreachable ? 0
                                                                    : -1);
  out.family("logging_proxy_build_info", "gauge", "The running version (value 1).");
  out.sample("logging_proxy_build_info", {{"version", LP_VERSION}}, int64_t{1});
  return out.take();
}

lp::AdminResponse readiness(const lp::ProxyServer& server, const lp::Shipper& shipper) {
  const lp::Config& config = server.current()->config();
  const auto state = shipper.counters().log_server.load();
  const char* log_server = state == lp::ShipperCounters::LogServer::kReachable ? "reachable"
                           : state == lp::ShipperCounters::LogServer::kUnreachable
                               ? "unreachable (captures spool)"
                               : "not contacted yet";
  const bool stopping = server.stopping();
  std::string body = stopping ? "stopping\n" : "ready\n";
  body += "listening: " + server.url() + "\n";
  body += "config: " + config.source + " (" + std::to_string(config.routes.size()) + " routes)\n";
  body += "log server: " + config.logging.server_url + " " + log_server + "\n";
  return {stopping ? 503 : 200, "text/plain; charset=utf-8", body, ""};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "replay") return lp::run_replay(argc, argv);
  if (argc > 1 && std::string(argv[1]) == "healthcheck") {
    return lp::run_healthcheck_command(argc, argv);
  }
  if (argc > 1 && std::string(argv[1]) == "reload") return lp::run_reload_command(argc, argv);
  if (argc > 1 && std::string(argv[1]) == "ca") return lp::run_ca_command(argc, argv);
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

  lp::TerminationSignals signals(/*hangup=*/true);  // before any thread starts

  lp::ProxyMetrics metrics;
  metrics.config_loaded_at_s = std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
  lp::ConsoleLog console(config.logging.console && !check,
                         config.logging.console_format == lp::LoggingConfig::ConsoleFormat::kJson
                             ? lp::ConsoleLog::Format::kJson
                             : lp::ConsoleLog::Format::kText);
  lp::CaptureQueue capture_queue(config.logging.queue_bytes);
  lp::CaptureCounters capture_counters;
  lp::ProxyServer server(config.server, console);
  const lp::GenerationEnv env{
      {console, metrics, server.stopping_flag()}, capture_queue, capture_counters};
  std::string error;
  std::shared_ptr<const lp::Generation> generation = lp::Generation::build(config, env, &error);
  if (!generation) {
    std::cerr << "logging-proxy: " << error << "\n";
    return 2;
  }
  // Warnings go to stderr in --check mode too, so a config can be vetted before it runs.
  for (const auto& w : lp::insecure_route_warnings(config)) std::cerr << "WARNING: " << w << "\n";

  if (!lp::is_loopback_host(config.server.host)) {
    bool injects = false;
    for (const auto& r : config.routes) injects = injects || !r.headers.empty();
    std::cerr << "WARNING: logging-proxy listens on " << config.server.host
              << ": anyone who can reach this port can send requests through every route"
              << (injects ? ", with the credentials your routes inject," : "")
              << " and their traffic is captured. Use server.host: localhost unless this is "
                 "intended and the port is firewalled.\n";
  }
  if (config.server.admin_port && !lp::is_loopback_host(config.server.admin_host)) {
    std::cerr << "WARNING: the admin listener (server.admin_host " << config.server.admin_host
              << ") is reachable from other machines: anyone who can reach it can read the "
                 "metrics and reload the configuration.\n";
  }

  if (check) {
    std::cout << config.source << ": OK\n";
    describe(config, std::cout);
    return 0;
  }

  std::unique_ptr<lp::Shipper> shipper;
  try {
    shipper = std::make_unique<lp::Shipper>(config, capture_queue, capture_counters, console);
  } catch (const std::exception& e) {
    std::cerr << "logging-proxy: " << e.what() << "\n";
    return 1;
  }

  server.use(std::move(generation));
  try {
    server.bind();
  } catch (const std::exception& e) {
    std::cerr << "logging-proxy: " << e.what() << "\n";
    return 1;
  }
  lp::Reloader reloader(config_path, config, env, server);
  std::unique_ptr<lp::AdminServer> admin;
  if (config.server.admin_port) {
    admin = std::make_unique<lp::AdminServer>(lp::AdminHandlers{
        [&] { return render_metrics(metrics, server, capture_queue, capture_counters, *shipper); },
        [&] { return readiness(server, *shipper); },
        [&] {
          const lp::Reloader::Result r = reloader.reload("POST /reload");
          return lp::AdminResponse{r.ok ? 200 : 422, "text/plain; charset=utf-8", r.message + "\n",
                                   ""};
        }});
    try {
      admin->bind(config.server.admin_host, *config.server.admin_port);
    } catch (const std::exception& e) {
      std::cerr << "logging-proxy: admin listener (server.admin_port): " << e.what() << "\n";
      return 1;
    }
  }
  shipper->start();
  std::printf("logging-proxy listening on %s\n", server.url().c_str());
  if (admin) {
    std::printf("logging-proxy admin on %s (GET /metrics /healthz /readyz, POST /reload)\n",
                admin->url().c_str());
    admin->start();
  }
  std::fflush(stdout);

  signals.start(
      [&](const char* name) {
        console.line(std::string("[proxy] ") + name + ": shutting down");
        server.shutdown();
      },
      [&] { reloader.reload("SIGHUP"); });
  server.run();
  if (admin) admin->stop();
  // In-flight exchanges are done; ship what they captured (or spool it) before exiting.
  shipper->stop(std::chrono::seconds(5));
  signals.stop();
  console.line("[proxy] stopped");
  console.flush();
  return 0;
}
