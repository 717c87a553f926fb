// One log-server per data dir. Startup recovery marks every exchange still in progress as
// truncated and quarantines files no committed batch wrote: right after a crash, ruinous while
// another server is still writing the same dir. So the server holds an exclusive flock on
// DATA_DIR/log-server.lock for its whole life (the kernel drops it when the process dies, even
// by SIGKILL, so a crash never leaves a stale lock). `log-server reindex` does not take it: it
// only rewrites derived columns, which is safe beside a running server.
#pragma once

#include <string>

namespace lp::logsrv {

class DataDirLock {
 public:
  // Takes the lock, writing our pid into the file. Throws std::runtime_error naming the data
  // dir (and the holder's pid when it is known) when another process holds it.
  explicit DataDirLock(const std::string& data_dir);
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace lp::logsrv
