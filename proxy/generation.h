// One loaded configuration and everything the data plane builds from it: the router, TLS
// contexts and upstream endpoints (Forwarder) and the capture redaction (CaptureTee).
// Immutable once built. A reload builds a new Generation and switches new requests to it; an
// exchange holds the generation it started on (shared_ptr) until it ends, so in-flight
// exchanges finish on the configuration they started with.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "proxy/capture_queue.h"
#include "proxy/capture_tee.h"
#include "proxy/forwarder.h"

namespace lp {

// What every generation shares; all of it must outlive every generation.
struct GenerationEnv {
  ForwarderEnv forwarder;
  CaptureQueue& capture_queue;
  CaptureCounters& capture_counters;
};

class Generation {
 public:
  // The generation for `config`, or nullptr with *error set to the message `--check` prints
  // for it ("FILE:LINE: route 'NAME': problem", "FILE: ca_file ...").
  static std::shared_ptr<const Generation> build(Config config, const GenerationEnv& env,
                                                 std::string* error);

  const Config& config() const { return config_; }
  Forwarder& forwarder() const { return *forwarder_; }
  const CaptureTee& capture() const { return *capture_; }

 private:
  explicit Generation(Config config) : config_(std::move(config)) {}
  const Config config_;
  std::unique_ptr<CaptureTee> capture_;
  std::unique_ptr<Forwarder> forwarder_;  // uses capture_ and config_
};

// "route 'NAME': insecure_skip_verify is on: ..." for each https route that skips TLS
// verification: printed at startup and on every reload that keeps such a route.
std::vector<std::string> insecure_route_warnings(const Config& config);

// Settings a running proxy cannot switch (its listeners, event loops, console and capture
// shipping): "server.port (5601 -> 5602)" for each that differs between `running` and
// `loaded`. Empty when the rest may be reloaded.
std::vector<std::string> restart_only_changes(const Config& running, const Config& loaded);

}  // namespace lp
