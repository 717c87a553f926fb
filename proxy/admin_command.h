// `logging-proxy healthcheck` and `logging-proxy reload`: commands that talk to a running
// proxy's admin listener (server.admin_host:admin_port of the same --config). Exit codes:
// 0 done, 1 the proxy did not answer as hoped (down, unhealthy, reload refused), 2 bad
// arguments or a config without an admin listener.
#pragma once

namespace lp {

// argv[1] is "healthcheck" / "reload".
int run_healthcheck_command(int argc, char** argv);
int run_reload_command(int argc, char** argv);

}  // namespace lp
