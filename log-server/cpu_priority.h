// The log server yields the CPU to the traffic it records. On a host shared with the proxy,
// each batch it applies is milliseconds of CPU; at equal priority the kernel lets it finish its
// time slice before a woken proxy thread runs, and a client request waits behind logging
// (decision 010). So the server runs nicer than the proxy: log_server.nice, 10 by default.
#pragma once

#include <string>

namespace lp::logsrv {

struct CpuPriority {
  int nice = 0;       // the nice value every thread now has (or kept, on error)
  std::string error;  // empty on success; otherwise what failed, for a warning
};

// Raises the nice value of every thread of this process to `nice` (0-19); threads started
// later inherit it. Never lowers it: a process already started nicer keeps its value (lowering
// needs privileges), and `nice` 0 changes nothing. Call from main, once, at startup.
CpuPriority lower_cpu_priority(int nice);

}  // namespace lp::logsrv
