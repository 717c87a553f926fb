// Names the calling thread, so that `top -H`, `perf` and /proc/PID/task/TID/comm tell a
// process's threads apart (the proxy's event loops from its capture threads, say). Linux keeps
// at most 15 bytes of a name; a longer one is cut there. Best effort: a name that cannot be set
// leaves the thread with the process's name, nothing else changes.
//
// Call it first thing on the thread to be named.
#pragma once

#include <string>

namespace lp {

void name_this_thread(const std::string& name);

}  // namespace lp
