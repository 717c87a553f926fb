#include "log-server/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace lp::logsrv {

namespace {

constexpr const char* kLockFile = "log-server.lock";

// The pid the holder wrote, or "" (unreadable, or written by nothing yet).
std::string read_holder(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "";
  std::string s(buf, static_cast<size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char c : s) {
    if (c < '0' || c > '9') return "";
  }
  return s;
}

}  // namespace

DataDirLock::DataDirLock(const std::string& data_dir) {
  const std::string path = data_dir + "/" + kLockFile;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = read_holder(fd_);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) {
      throw std::runtime_error("data_dir " + data_dir + " is in use by another log-server" +
                               (holder.empty() ? "" : " (pid " + holder + ")") +
                               ": stop it first, or give this one another data_dir");
    }
    throw std::runtime_error("cannot lock " + path + ": " + std::strerror(err));
  }
  // Only for the message above; the lock itself is the flock.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // The pid is a courtesy: the lock holds without it.
  }
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace lp::logsrv
