#include "proxy/generation.h"

#include "proxy/router.h"

namespace lp {
namespace {

// "file:line: route 'name': problem" for a route the router rejected.
std::string route_error(const Config& config, const RouteError& e) {
  std::string where = config.source;
  for (const auto& r : config.routes) {
    if (r.name == e.route() && r.line > 0) where += ":" + std::to_string(r.line);
  }
  return where + ": route '" + e.route() + "': " + e.what();
}

std::string text_of(const std::string& s) {
  return "\"" + s + "\"";
}
std::string text_of(int v) {
  return std::to_string(v);
}
std::string text_of(size_t v) {
  return std::to_string(v);
}
std::string text_of(bool v) {
  return v ? "true" : "false";
}
std::string text_of(std::chrono::milliseconds v) {
  return std::to_string(v.count()) + "ms";
}
std::string text_of(const std::optional<int>& v) {
  return v ? std::to_string(*v) : "unset";
}
std::string text_of(LoggingConfig::ConsoleFormat v) {
  return v == LoggingConfig::ConsoleFormat::kJson ? "json" : "text";
}

}  // namespace

std::shared_ptr<const Generation> Generation::build(Config config, const GenerationEnv& env,
                                                    std::string* error) {
  std::shared_ptr<Generation> g(new Generation(std::move(config)));
  const Config& c = g->config_;
  // Headers the proxy injects (provider keys) are masked in captures like credentials.
  std::vector<std::string> redact_names = c.logging.redact_headers;
  for (const auto& r : c.routes) {
    for (const auto& h : r.headers) redact_names.push_back(h.first);
  }
  g->capture_ = std::make_unique<CaptureTee>(
      env.capture_queue, Redactor(c.logging.redact, redact_names), &env.capture_counters);
  try {
    g->forwarder_ = std::make_unique<Forwarder>(c, g->capture_.get(), env.forwarder);
  } catch (const RouteError& e) {
    *error = route_error(c, e);
    return nullptr;
  } catch (const std::exception& e) {
    *error = c.source + ": " + e.what();
    return nullptr;
  }
  return g;
}

std::vector<std::string> insecure_route_warnings(const Config& config) {
  std::vector<std::string> out;
  for (const auto& r : config.routes) {
    if (r.insecure_skip_verify && r.destination.tls()) {
      out.push_back("route '" + r.name + "': insecure_skip_verify is on: TLS certificates of " +
                    r.destination.origin() +
                    " are NOT verified; anyone on the path can read and alter this traffic.");
    }
  }
  return out;
}

std::vector<std::string> restart_only_changes(const Config& running, const Config& loaded) {
  std::vector<std::string> out;
  auto check = [&](const char* key, const auto& a, const auto& b) {
    if (!(a == b)) out.push_back(std::string(key) + " (" + text_of(a) + " -> " + text_of(b) + ")");
  };
  const ServerConfig &rs = running.server, &ls = loaded.server;
  check("server.host", rs.host, ls.host);
  check("server.port", rs.port, ls.port);
  check("server.threads", rs.threads, ls.threads);
  check("server.max_connections", rs.max_connections, ls.max_connections);
  check("server.admin_host", rs.admin_host, ls.admin_host);
  check("server.admin_port", rs.admin_port, ls.admin_port);
  const LoggingConfig &rl = running.logging, &ll = loaded.logging;
  check("logging.console", rl.console, ll.console);
  check("logging.console_format", rl.console_format, ll.console_format);
  check("logging.server_url", rl.server_url, ll.server_url);
  check("logging.queue_bytes", rl.queue_bytes, ll.queue_bytes);
  check("logging.spool_dir", rl.spool_dir, ll.spool_dir);
  check("logging.spool_max_bytes", rl.spool_max_bytes, ll.spool_max_bytes);
  check("logging.batch_bytes", rl.batch_bytes, ll.batch_bytes);
  check("logging.batch_interval", rl.batch_interval, ll.batch_interval);
  return out;
}

}  // namespace lp
