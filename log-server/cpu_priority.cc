#include "log-server/cpu_priority.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace lp::logsrv {

CpuPriority lower_cpu_priority(int nice) {
  CpuPriority out;
  errno = 0;
  const int current = ::getpriority(PRIO_PROCESS, 0);  // this thread's
  if (current == -1 && errno != 0) {
    out.error = std::string("getpriority: ") + std::strerror(errno);
    return out;
  }
  out.nice = current;
  if (nice <= current) return out;
  // On Linux a nice value belongs to a thread, not the process: set each one that exists.
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    const id_t tid = static_cast<id_t>(std::stoul(task.path().filename().string()));
    // A thread that ended meanwhile (ESRCH) needs no priority.
    if (::setpriority(PRIO_PROCESS, tid, nice) != 0 && errno != ESRCH) {
      out.error = "setpriority(" + std::to_string(nice) + "): " + std::strerror(errno);
      return out;
    }
  }
  if (ec) {
    out.error = "/proc/self/task: " + ec.message();
    return out;
  }
  out.nice = nice;
  return out;
}

}  // namespace lp::logsrv
