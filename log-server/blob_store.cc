#include "log-server/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log-server/time_format.h"

namespace lp::logsrv {

namespace {

// Touching more files than this in one batch: one syncfs() beats a fdatasync() per file.
constexpr size_t kSyncfsThreshold = 64;

[[noreturn]] void fail(const std::string& op, const std::string& path) {
  int err = errno;
  throw DiskError(err, op + " " + path + ": " + std::strerror(err));
}

void fsync_path(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("open", dir);
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    fail("fsync", dir);
  }
  ::close(fd);
}

// mkdir 0700; true when it was created now.
bool make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return true;
  if (errno != EEXIST) fail("mkdir", dir);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) fail("stat", dir);
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    fail("mkdir", dir);
  }
  return false;
}

}  // namespace

DiskError::DiskError(int err, const std::string& what) : std::runtime_error(what), err_(err) {}

bool DiskError::disk_full() const {
  return err_ == ENOSPC || err_ == EDQUOT;
}

BlobStore::BlobStore(std::string data_dir) : root_(std::move(data_dir)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  if (root_.empty()) root_ = ".";
  // Create the parents as needed, then the directory itself.
  for (size_t pos = root_.find('/', 1); pos != std::string::npos; pos = root_.find('/', pos + 1)) {
    std::string parent = root_.substr(0, pos);
    if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) fail("mkdir", parent);
  }
  make_dir(root_);
}

FileNames BlobStore::names_for(int64_t started_us, const std::string& id, bool full_id) {
  std::string base = day_directory(started_us) + "/" + file_timestamp(started_us) + "_" +
                     (full_id ? id : id.substr(0, 8));
  return {base + "_request.bin", base + "_response.bin"};
}

BlobStore::Trim BlobStore::trim_to(const std::string& relative, int64_t size) {
  std::string p = path(relative);
  int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Trim::kMissing;
    fail("open", p);
  }
  struct stat st;
  Trim result = Trim::kOk;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    fail("stat", p);
  }
  if (st.st_size > size) {
    if (::ftruncate(fd, size) != 0 || ::fdatasync(fd) != 0) {
      int err = errno;
      ::close(fd);
      errno = err;
      fail("truncate", p);
    }
    result = Trim::kTrimmed;
  } else if (st.st_size < size) {
    result = Trim::kShort;
  }
  ::close(fd);
  return result;
}

bool BlobStore::exists(const std::string& relative) const {
  struct stat st;
  return ::stat(path(relative).c_str(), &st) == 0;
}

int BlobStore::open_read(const std::string& relative) const {
  return ::open(path(relative).c_str(), O_RDONLY | O_CLOEXEC);
}

BatchFiles::~BatchFiles() {
  for (auto& [_, f] : open_) ::close(f.fd);
}

void BatchFiles::ensure_dir(const std::string& relative_dir) {
  if (!known_dirs_.insert(relative_dir).second) return;
  if (make_dir(store_.path(relative_dir))) dirty_dirs_.insert(store_.root());
}

BatchFiles::OpenFile& BatchFiles::open(const std::string& relative, int64_t acked_size) {
  auto it = open_.find(relative);
  if (it != open_.end()) return it->second;
  size_t slash = relative.rfind('/');
  if (slash != std::string::npos) ensure_dir(relative.substr(0, slash));
  std::string p = store_.path(relative);
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    dirty_dirs_.insert(slash == std::string::npos ? store_.root()
                                                  : store_.path(relative.substr(0, slash)));
  } else if (errno == EEXIST) {
    fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  }
  if (fd < 0) fail("open", p);
  // Bytes past the acknowledged size were written by an attempt that never committed.
  if (::ftruncate(fd, acked_size) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    fail("truncate", p);
  }
  return open_.emplace(relative, OpenFile{fd, acked_size}).first->second;
}

void BatchFiles::touch(const std::string& relative, int64_t acked_size) {
  open(relative, acked_size);
}

int64_t BatchFiles::append(const std::string& relative, int64_t acked_size, std::string_view data) {
  OpenFile& f = open(relative, acked_size);
  while (!data.empty()) {
    ssize_t n = ::pwrite(f.fd, data.data(), data.size(), f.size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write", store_.path(relative));
    }
    f.size += n;
    bytes_written_ += static_cast<uint64_t>(n);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return f.size;
}

void BatchFiles::sync() {
  if (open_.size() > kSyncfsThreshold) {
    // One call flushes the whole file system, which costs less than hundreds of
    // fdatasync()s; it reports writeback errors since Linux 5.8.
    if (::syncfs(open_.begin()->second.fd) != 0) fail("syncfs", store_.root());
  } else {
    for (auto& [relative, f] : open_) {
      if (::fdatasync(f.fd) != 0) fail("fdatasync", store_.path(relative));
    }
  }
  for (const std::string& dir : dirty_dirs_) fsync_path(dir);
}

}  // namespace lp::logsrv
