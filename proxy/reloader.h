// Reloading the configuration of a running proxy (SIGHUP, POST /reload on the admin listener,
// `logging-proxy reload`): re-read the file, validate it exactly as `--check` does, build a
// Generation and switch new requests to it. In-flight exchanges finish on the generation they
// started with; no connection is closed. A file that does not load, or that changes a setting
// only a restart can change, is refused as a whole: the running configuration stays, a console
// line and a counter say so.
//
// reload() may be called from any thread (calls are serialised); `running` (the startup
// configuration: listeners and capture shipping), `server`, `console` and `metrics` must
// outlive this.
#pragma once

#include <mutex>
#include <string>

#include "common/config.h"
#include "proxy/generation.h"
#include "proxy/proxy_server.h"

namespace lp {

class Reloader {
 public:
  Reloader(std::string path, const Config& running, GenerationEnv env, ProxyServer& server);

  struct Result {
    bool ok = false;
    std::string message;  // one line: what was applied, or why nothing was
  };
  // `trigger` names the cause in the console line ("SIGHUP", "POST /reload").
  Result reload(const std::string& trigger);

 private:
  const std::string path_;
  const Config& running_;
  const GenerationEnv env_;
  ProxyServer& server_;
  std::mutex mu_;
};

}  // namespace lp
