#include "proxy/reloader.h"

#include <chrono>

namespace lp {

Reloader::Reloader(std::string path, const Config& running, GenerationEnv env, ProxyServer& server)
    : path_(std::move(path)), running_(running), env_(env), server_(server) {}

Reloader::Result Reloader::reload(const std::string& trigger) {
  std::lock_guard<std::mutex> lock(mu_);
  ProxyMetrics& metrics = env_.forwarder.metrics;
  ConsoleLog& console = env_.forwarder.console;
  auto refuse = [&](const std::string& why) {
    metrics.config_reload_failures.fetch_add(1, std::memory_order_relaxed);
    const std::string message = "reload refused, the running configuration stays: " + why;
    console.line("[proxy] " + trigger + ": " + message);
    return Result{false, message};
  };
  Config loaded;
  try {
    loaded = load_config_file(path_);
  } catch (const ConfigError& e) {
    return refuse(e.what());
  }
  if (auto changed = restart_only_changes(running_, loaded); !changed.empty()) {
    std::string list;
    for (const auto& c : changed) list += (list.empty() ? "" : ", ") + c;
    return refuse(list + ": listener, console and capture-shipping settings need a restart");
  }
  std::string error;
  std::shared_ptr<const Generation> generation = Generation::build(std::move(loaded), env_, &error);
  if (!generation) return refuse(error);
  for (const auto& w : insecure_route_warnings(generation->config())) {
    console.line("[proxy] WARNING: " + w);
  }
  const size_t routes = generation->config().routes.size();
  server_.use(std::move(generation));
  metrics.config_reloads.fetch_add(1, std::memory_order_relaxed);
  metrics.config_loaded_at_s.store(std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count(),
                                   std::memory_order_relaxed);
  const std::string message =
      "reloaded " + path_ + ": " + std::to_string(routes) + " routes; new requests use them";
  console.line("[proxy] " + trigger + ": " + message);
  return Result{true, message};
}

}  // namespace lp
