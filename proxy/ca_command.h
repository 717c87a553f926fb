// `logging-proxy ca init` and `logging-proxy ca export`: make the forward proxy's local CA in
// forward_proxy.ca_dir of --config FILE, and hand its certificate to the clients that must
// trust it. Exit codes: 0 done, 1 the CA could not be made or read (one already exists, bad
// key mode, I/O), 2 bad arguments or a config that does not load.
#pragma once

namespace lp {

// argv[1] is "ca".
int run_ca_command(int argc, char** argv);

}  // namespace lp
