#include "log-server/blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>

#include "common/time_format.h"

namespace lp::logsrv {

namespace {

// Touching more files than this in one batch: one syncfs() beats a fdatasync() per file.
constexpr size_t kSyncfsThreshold = 64;
// Pieces gathered for one write; below IOV_MAX (1024).
constexpr size_t kMaxGathered = 256;

// mkdir 0700; true when it was created now.
bool make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return true;
  if (errno != EEXIST) throw_disk_error("mkdir", dir);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) throw_disk_error("stat", dir);
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    throw_disk_error("mkdir", dir);
  }
  return false;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Whether s[pos..] starts with digits in the shape of `shape` ('9' a digit, else literal).
bool matches_shape(std::string_view s, size_t pos, std::string_view shape) {
  if (s.size() < pos + shape.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    char c = s[pos + i];
    if (shape[i] == '9' ? !(c >= '0' && c <= '9') : c != shape[i]) return false;
  }
  return true;
}

// Entries of `dir` (not . and ..) that are directories (`want_dir`) or regular files.
std::vector<std::string> list_dir(const std::string& dir, bool want_dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw_disk_error("opendir", dir);
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = e->d_type == DT_DIR, is_file = e->d_type == DT_REG;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      if (::lstat((dir + "/" + name).c_str(), &st) != 0) continue;  // gone meanwhile
      is_dir = S_ISDIR(st.st_mode);
      is_file = S_ISREG(st.st_mode);
    }
    if (want_dir ? is_dir : is_file) names.push_back(std::move(name));
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) {
    errno = err;
    throw_disk_error("readdir", dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The test quota (kTestQuotaEnv), when the hook is set and its file holds a number.
std::optional<uint64_t> read_test_quota() {
  const char* file = std::getenv(kTestQuotaEnv);
  if (!file || !*file) return std::nullopt;
  std::ifstream in(file);
  std::string text;
  if (!(in >> text) || !all_digits(text) || text.size() > 19) return std::nullopt;
  return std::stoull(text);
}

// Bytes of the exchange files under `root` (for the test quota only: a full walk).
uint64_t blob_bytes(const BlobStore& store) {
  uint64_t total = 0;
  for (const std::string& day : store.day_directories()) {
    for (const std::string& f : store.blob_files(day)) {
      struct stat st;
      if (::stat(store.path(f).c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_size);
    }
  }
  return total;
}

}  // namespace

bool is_day_directory_name(std::string_view name) {
  return name.size() == 10 && matches_shape(name, 0, "9999-99-99");
}

bool is_blob_file_name(std::string_view day, std::string_view name) {
  // {day}_HH-MM-SS.mmm_{id}_{kind}.bin
  if (!is_day_directory_name(day) || name.substr(0, day.size()) != day) return false;
  if (!matches_shape(name, day.size(), "_99-99-99.999_")) return false;
  std::string_view rest = name.substr(day.size() + 14);
  std::string_view kind;
  for (std::string_view k : {"_request.bin", "_response.bin"}) {
    if (rest.size() > k.size() && rest.substr(rest.size() - k.size()) == k) kind = k;
  }
  if (kind.empty()) return false;
  std::string_view id = rest.substr(0, rest.size() - kind.size());
  if (id.size() != 8 && id.size() != 36) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-';
  });
}

DiskError::DiskError(int err, const std::string& what) : std::runtime_error(what), err_(err) {}

void throw_disk_error(const std::string& op, const std::string& path) {
  int err = errno;
  throw DiskError(err, op + " " + path + ": " + std::strerror(err));
}

void fsync_directory(const std::string& dir, bool missing_ok) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (missing_ok && errno == ENOENT) return;
    throw_disk_error("open", dir);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    throw_disk_error("fsync", dir);
  }
  ::close(fd);
}

bool DiskError::disk_full() const {
  return err_ == ENOSPC || err_ == EDQUOT;
}

BlobStore::BlobStore(std::string data_dir) : root_(std::move(data_dir)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  if (root_.empty()) root_ = ".";
  // Create the parents as needed, then the directory itself.
  for (size_t pos = root_.find('/', 1); pos != std::string::npos; pos = root_.find('/', pos + 1)) {
    std::string parent = root_.substr(0, pos);
    if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) throw_disk_error("mkdir", parent);
  }
  make_dir(root_);
  if (const char* quota = std::getenv(kTestQuotaEnv); quota && *quota) {
    std::cerr << "log-server: TEST HOOK " << kTestQuotaEnv << "=" << quota
              << " is set: exchange files are limited to the byte count in that file\n";
  }
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
    throw_disk_error("open", p);
  }
  struct stat st;
  Trim result = Trim::kOk;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    throw_disk_error("stat", p);
  }
  if (st.st_size > size) {
    if (::ftruncate(fd, size) != 0 || ::fdatasync(fd) != 0) {
      int err = errno;
      ::close(fd);
      errno = err;
      throw_disk_error("truncate", p);
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

std::vector<std::string> BlobStore::day_directories() const {
  std::vector<std::string> days = list_dir(root_, /*want_dir=*/true);
  std::erase_if(days, [](const std::string& d) { return !is_day_directory_name(d); });
  return days;
}

std::vector<std::string> BlobStore::blob_files(const std::string& day) const {
  std::vector<std::string> files;
  for (std::string& name : list_dir(path(day), /*want_dir=*/false)) {
    if (is_blob_file_name(day, name)) files.push_back(day + "/" + name);
  }
  return files;
}

int64_t BlobStore::quarantine(const std::string& relative) {
  std::string from = path(relative);
  struct stat st;
  if (::stat(from.c_str(), &st) != 0) throw_disk_error("stat", from);
  std::string to_dir = path(kQuarantineDir);
  make_dir(to_dir);
  size_t slash = relative.rfind('/');
  if (slash != std::string::npos) {
    to_dir += "/" + relative.substr(0, slash);
    make_dir(to_dir);
  }
  std::string to = path(std::string(kQuarantineDir) + "/" + relative);
  // No fsync: if the rename is lost in a crash, the next start finds the orphan again.
  if (::rename(from.c_str(), to.c_str()) != 0) throw_disk_error("rename", from + " to " + to);
  return st.st_size;
}

BatchFiles::~BatchFiles() {
  for (auto& [_, f] : open_) ::close(f.fd);
  for (auto& [_, fd] : dir_fds_) ::close(fd);
}

int BatchFiles::dir_fd(const std::string& relative_dir) {
  auto it = dir_fds_.find(relative_dir);
  if (it != dir_fds_.end()) return it->second;
  std::string p = store_.path(relative_dir);
  if (make_dir(p)) root_dirty_ = true;
  int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_disk_error("open", p);
  dir_fds_.emplace(relative_dir, fd);
  return fd;
}

int BatchFiles::create_fd(const std::string& relative) {
  size_t slash = relative.rfind('/');
  // Every name names_for() gives is "day/file"; anything else is opened by its path.
  if (slash == std::string::npos) {
    int fd = ::open(store_.path(relative).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) root_dirty_ = true;
    return fd;
  }
  std::string dir = relative.substr(0, slash);
  int fd = ::openat(dir_fd(dir), relative.c_str() + slash + 1,
                    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) dirty_dirs_.insert(std::move(dir));
  return fd;
}

bool BatchFiles::create(const std::string& relative) {
  if (open_.count(relative)) return false;
  int fd = create_fd(relative);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    throw_disk_error("open", store_.path(relative));
  }
  open_.emplace(relative, OpenFile{fd, 0});
  return true;
}

BatchFiles::OpenFile& BatchFiles::open(const std::string& relative, int64_t acked_size) {
  auto it = open_.find(relative);
  if (it != open_.end()) return it->second;
  std::string p = store_.path(relative);
  int fd = create_fd(relative);
  bool created = fd >= 0;
  if (!created && errno == EEXIST) fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw_disk_error("open", p);
  // Bytes past the acknowledged size were written by an attempt that never committed. A file
  // created just now is empty: sized right only if nothing was acknowledged for it.
  if ((!created || acked_size != 0) && ::ftruncate(fd, acked_size) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    throw_disk_error("truncate", p);
  }
  return open_.emplace(relative, OpenFile{fd, acked_size}).first->second;
}

void BatchFiles::touch(const std::string& relative, int64_t acked_size) {
  open(relative, acked_size);
}

int64_t BatchFiles::append(const std::string& relative, int64_t acked_size, std::string_view data) {
  OpenFile& f = open(relative, acked_size);
  if (!quota_read_) {
    quota_read_ = true;
    quota_ = read_test_quota();
    if (quota_) quota_base_ = blob_bytes(store_);
  }
  bool over_quota = false;
  if (quota_) {
    // Files opened later in the batch may still be cut back; counting them whole errs on the
    // full side, which is what a test of a full disk wants.
    uint64_t used = quota_base_ + bytes_written_ + gathered_bytes_;
    uint64_t room = used < *quota_ ? *quota_ - used : 0;
    if (data.size() > room) {
      data = data.substr(0, room);
      over_quota = true;
    }
  }
  const std::string& key = open_.find(relative)->first;
  if (gathered_file_ != &key || gathered_.size() >= kMaxGathered) flush();
  gathered_file_ = &key;
  if (!data.empty()) gathered_.push_back(data);
  gathered_bytes_ += data.size();
  if (over_quota) {
    flush();
    errno = ENOSPC;
    throw_disk_error("write", store_.path(relative));
  }
  return f.size + static_cast<int64_t>(gathered_bytes_);
}

void BatchFiles::flush() {
  if (!gathered_file_) return;
  const std::string& relative = *gathered_file_;
  OpenFile& f = open_.at(relative);
  std::vector<iovec> iov;
  iov.reserve(gathered_.size());
  for (std::string_view piece : gathered_) {
    iov.push_back({const_cast<char*>(piece.data()), piece.size()});
  }
  gathered_.clear();
  gathered_file_ = nullptr;
  uint64_t left = gathered_bytes_;
  gathered_bytes_ = 0;
  size_t first = 0;
  while (left > 0) {
    ssize_t n = ::pwritev(f.fd, iov.data() + first, static_cast<int>(iov.size() - first), f.size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_disk_error("write", store_.path(relative));
    }
    f.size += n;
    bytes_written_ += static_cast<uint64_t>(n);
    left -= static_cast<uint64_t>(n);
    // A short write: skip what went out and write the rest.
    for (size_t done = static_cast<size_t>(n); done > 0 && first < iov.size();) {
      size_t take = std::min(done, iov[first].iov_len);
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + take;
      iov[first].iov_len -= take;
      done -= take;
      if (iov[first].iov_len == 0) ++first;
    }
  }
}

void BatchFiles::sync_all(const std::vector<BatchFiles*>& batches) {
  size_t files = 0;
  for (BatchFiles* b : batches) {
    b->flush();
    files += b->open_.size();
  }
  if (files > kSyncfsThreshold) {
    // One call flushes the whole file system, which costs less than hundreds of
    // fdatasync()s; it reports writeback errors since Linux 5.8.
    for (BatchFiles* b : batches) {
      if (b->open_.empty()) continue;
      if (::syncfs(b->open_.begin()->second.fd) != 0) throw_disk_error("syncfs", b->store_.root());
      break;
    }
  } else {
    for (BatchFiles* b : batches) {
      for (auto& [relative, f] : b->open_) {
        if (::fdatasync(f.fd) != 0) throw_disk_error("fdatasync", b->store_.path(relative));
      }
    }
  }
  for (BatchFiles* b : batches) {
    for (const std::string& dir : b->dirty_dirs_) {
      if (::fsync(b->dir_fds_.at(dir)) != 0) throw_disk_error("fsync", b->store_.path(dir));
    }
    // Files in a directory created in this batch: the directory's own entry, too.
    if (b->root_dirty_) fsync_directory(b->store_.root());
  }
}

}  // namespace lp::logsrv
