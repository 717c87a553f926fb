#include "proxy/admin_command.h"

#include <httplib.h>

#include <iostream>
#include <optional>
#include <string>

#include "common/config.h"
#include "common/healthcheck.h"

namespace lp {
namespace {

constexpr const char* kHealthcheckUsage =
    R"(Usage: logging-proxy healthcheck [--config FILE] [--timeout DURATION]

GETs /healthz on the admin listener (server.admin_host, server.admin_port) of the
proxy that runs with FILE. Exit 0 when it answers 200 within the timeout (default
3s), 1 otherwise, 2 when FILE sets no admin_port. For container health checks.
)";

constexpr const char* kReloadUsage = R"(Usage: logging-proxy reload [--config FILE]

Asks the proxy that runs with FILE to read FILE again (POST /reload on its admin
listener, server.admin_port). Routes, headers, redaction and timeouts switch for new
requests; requests in flight finish on the old ones; no connection is dropped. A file
that does not load, or that changes a setting only a restart can change (listeners,
console, capture shipping), is refused and the running configuration stays.
Exit 0 when reloaded, 1 when refused or the proxy did not answer, 2 on bad arguments.
Without an admin listener, send the proxy SIGHUP instead: kill -HUP PID.
)";

// The admin address of the config at `path`, or nullopt after printing why there is none.
std::optional<std::pair<std::string, int>> admin_address(const std::string& path,
                                                         const char* command) {
  Config config;
  try {
    config = load_config_file(path, LoadOptions{.expand_env = false});
  } catch (const ConfigError& e) {
    std::cerr << "logging-proxy " << command << ": " << e.what() << "\n";
    return std::nullopt;
  }
  if (!config.server.admin_port || *config.server.admin_port == 0) {
    std::cerr << "logging-proxy " << command << ": " << path
              << " sets no server.admin_port, so the proxy has no admin listener to ask"
              << (std::string(command) == "reload" ? " (send it SIGHUP instead: kill -HUP PID)"
                                                   : "")
              << "\n";
    return std::nullopt;
  }
  return std::make_pair(healthcheck_host(config.server.admin_host), *config.server.admin_port);
}

}  // namespace

int run_healthcheck_command(int argc, char** argv) {
  const HealthcheckArgs args = parse_healthcheck_args(argc, argv, 2);
  if (int code = cli_exit_code(args.cli, "logging-proxy healthcheck", kHealthcheckUsage, "");
      code >= 0) {
    return code;
  }
  auto address = admin_address(args.cli.config_path, "healthcheck");
  if (!address) return 2;
  return run_healthcheck("logging-proxy healthcheck", address->first, address->second, "/healthz",
                         args.timeout, std::cerr);
}

int run_reload_command(int argc, char** argv) {
  const CliArgs args = parse_cli_args(argc, argv, 2);
  if (args.check) {
    std::cerr << "logging-proxy reload: --check is not an option here\n";
    return 2;
  }
  if (int code = cli_exit_code(args, "logging-proxy reload", kReloadUsage, ""); code >= 0) {
    return code;
  }
  auto address = admin_address(args.config_path, "reload");
  if (!address) return 2;
  const auto& [host, port] = *address;
  const std::string where = "http://" +
                            (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                            std::to_string(port);
  httplib::Client client(host, port);
  client.set_connection_timeout(3);
  // Building a configuration (TLS trust stores) can take a moment; the answer says the outcome.
  client.set_read_timeout(30);
  auto res = client.Post("/reload");
  if (!res) {
    std::cerr << "logging-proxy reload: " << where << "/reload: " << httplib::to_string(res.error())
              << " (is the proxy running with this config?)\n";
    return 1;
  }
  (res->status == 200 ? std::cout : std::cerr) << res->body;
  return res->status == 200 ? 0 : 1;
}

}  // namespace lp
