#include "proxy/spool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "common/capture_wire.h"

namespace lp {

namespace {

namespace fs = std::filesystem;

constexpr size_t kCounterDigits = 20;
constexpr std::string_view kBatchSuffix = ".batch";
constexpr std::string_view kTmpSuffix = ".tmp";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "{counter:020}-{seq}-{proxy_id}.batch" -> counter; nullopt for any other name.
std::optional<uint64_t> parse_counter(std::string_view name) {
  if (!ends_with(name, kBatchSuffix)) return std::nullopt;
  name.remove_suffix(kBatchSuffix.size());
  if (name.size() < kCounterDigits + 1 || name[kCounterDigits] != '-') return std::nullopt;
  std::string_view counter = name.substr(0, kCounterDigits);
  if (!all_digits(counter)) return std::nullopt;
  std::string_view rest = name.substr(kCounterDigits + 1);
  size_t dash = rest.find('-');
  if (dash == std::string_view::npos || !all_digits(rest.substr(0, dash)) ||
      dash + 1 >= rest.size()) {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : counter) {
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

std::string pad(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(v));
  return buf;
}

std::string safe_proxy_id(const std::string& proxy_id) {
  std::string out = proxy_id.empty() ? std::string("_") : proxy_id;
  for (char& c : out) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (out.size() > 128) out.resize(128);
  return out;
}

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  errno = err;
  return rc == 0;
}

// Reads a whole regular file; false with errno-based text in *why on failure.
bool read_file(const std::string& path, std::string* out, std::string* why) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *why = errno_text(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *why = "not a regular file";
    ::close(fd);
    return false;
  }
  out->clear();
  out->reserve(static_cast<size_t>(st.st_size));
  char buf[64 * 1024];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      *why = errno_text(errno);
      ::close(fd);
      return false;
    }
    if (r == 0) break;
    out->append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  return true;
}

}  // namespace

Spool::~Spool() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

Spool::Spool(std::string dir, uint64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {
  auto fail = [&](const std::string& why) {
    throw std::runtime_error("spool directory " + dir_ + ": " + why);
  };
  if (dir_.empty()) fail("empty path");
  std::error_code ec;
  auto status = fs::status(dir_, ec);
  if (!fs::exists(status)) {
    fs::path parent = fs::path(dir_).parent_path();
    if (!parent.empty()) {
      fs::create_directories(parent, ec);
      if (ec) fail("cannot create parent " + parent.string() + ": " + ec.message());
    }
    if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
      fail("cannot create: " + errno_text(errno));
    }
    // mkdir honours the umask; make sure the result is exactly owner-only.
    if (::chmod(dir_.c_str(), 0700) != 0) fail("cannot chmod 0700: " + errno_text(errno));
    status = fs::status(dir_, ec);
  }
  if (!fs::is_directory(status)) fail("not a directory");
  const std::string lock_path = dir_ + "/.lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) fail("cannot open " + lock_path + ": " + errno_text(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    fail(err == EWOULDBLOCK ? "in use by another logging-proxy; give each proxy its own "
                              "logging.spool_dir"
                            : "cannot lock " + lock_path + ": " + errno_text(err));
  }

  struct Found {
    uint64_t counter;
    Entry entry;
  };
  std::vector<Found> found;
  fs::directory_iterator it(dir_, ec);
  if (ec) fail("cannot list: " + ec.message());
  for (fs::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) fail("cannot list: " + ec.message());
    std::string name = it->path().filename().string();
    std::error_code fec;
    if (!it->is_regular_file(fec)) continue;
    if (ends_with(name, kTmpSuffix)) {
      // A write interrupted by a crash: never renamed, so never acknowledged as spooled.
      ::unlink(it->path().c_str());
      continue;
    }
    auto counter = parse_counter(name);
    if (!counter) continue;
    uint64_t size = it->file_size(fec);
    if (fec) continue;
    found.push_back({*counter, {*counter, name, size}});
  }
  if (ec) fail("cannot list: " + ec.message());
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return a.counter != b.counter ? a.counter < b.counter : a.entry.name < b.entry.name;
  });
  for (auto& f : found) {
    bytes_ += f.entry.size;
    next_counter_ = std::max(next_counter_, f.counter + 1);
    files_.push_back(std::move(f.entry));
  }
}

bool Spool::append(uint64_t seq, const std::string& proxy_id, const std::string& batch) {
  const uint64_t slot = next_counter_;
  if (!append_at(slot, seq, proxy_id, batch)) return false;
  next_counter_ = std::max(next_counter_, slot + 1);
  return true;
}

bool Spool::append_at(uint64_t slot, uint64_t seq, const std::string& proxy_id,
                      const std::string& batch) {
  error_.clear();
  if (bytes_ + batch.size() > max_bytes_ || batch.size() > max_bytes_) {
    error_ = "spool full: " + std::to_string(bytes_) + " of " + std::to_string(max_bytes_) +
             " bytes used, batch of " + std::to_string(batch.size()) + " bytes refused";
    return false;
  }
  std::string name =
      pad(slot) + "-" + pad(seq) + "-" + safe_proxy_id(proxy_id) + std::string(kBatchSuffix);
  std::string path = dir_ + "/" + name;
  std::string tmp = path + std::string(kTmpSuffix);
  auto io_fail = [&](const std::string& what) {
    error_ = "spool " + what + " " + tmp + ": " + errno_text(errno);
    ::unlink(tmp.c_str());
    return false;
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return io_fail("cannot create");
  // open() honours the umask; the batch must be exactly owner read/write.
  if (::fchmod(fd, 0600) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    return io_fail("cannot chmod");
  }
  if (!write_all(fd, batch.data(), batch.size())) {
    int err = errno;
    ::close(fd);
    errno = err;
    return io_fail("cannot write");
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    return io_fail("cannot fsync");
  }
  if (::close(fd) != 0) return io_fail("cannot close");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return io_fail("cannot rename");
  if (!fsync_dir(dir_)) {
    // The rename may not be durable; report the batch as not spooled rather than keep a file
    // the index does not know about.
    error_ = "spool cannot fsync directory " + dir_ + ": " + errno_text(errno);
    ::unlink(path.c_str());
    return false;
  }
  files_.insert(find_after(slot), Entry{slot, std::move(name), batch.size()});
  bytes_ += batch.size();
  return true;
}

namespace {
// The first entry of `files` (sorted by counter) whose counter is above `id`.
template <class Files>
auto first_after(Files& files, uint64_t id) {
  return std::upper_bound(files.begin(), files.end(), id,
                          [](uint64_t c, const auto& e) { return c < e.counter; });
}
}  // namespace

Spool::Files::iterator Spool::find_after(uint64_t id) {
  return first_after(files_, id);
}

std::optional<Spool::Stored> Spool::next(uint64_t id) {
  return read_from(find_after(id));
}

uint64_t Spool::next_size(uint64_t id) const {
  auto it = first_after(files_, id);
  return it == files_.end() ? 0 : it->size;
}

std::optional<Spool::Stored> Spool::read_from(Files::iterator it) {
  error_.clear();
  while (it != files_.end()) {
    std::string path = dir_ + "/" + it->name;
    Stored stored;
    std::string why;
    if (read_file(path, &stored.bytes, &why)) {
      // The views are not kept: the check is what matters (a file changed on disk is
      // skipped here rather than refused by the log server forever).
      std::string decode_error;
      if (auto batch = wire::decode_batch_views(stored.bytes, &decode_error)) {
        stored.id = it->counter;
        stored.proxy_id = std::move(batch->proxy_id);
        stored.seq = batch->seq;
        return stored;
      }
      why = "not a capture batch (" + decode_error + ")";
    }
    if (!error_.empty()) error_ += "; ";
    error_ += "spool skipped " + path + ": " + why;
    ::unlink(path.c_str());
    bytes_ -= std::min(bytes_, it->size);
    it = files_.erase(it);
  }
  return std::nullopt;
}

void Spool::remove(uint64_t id) {
  auto it = std::lower_bound(files_.begin(), files_.end(), id,
                             [](const Entry& e, uint64_t c) { return e.counter < c; });
  if (it == files_.end() || it->counter != id) return;
  std::string path = dir_ + "/" + it->name;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    // Left behind, it would be re-sent after a restart; the log server applies it once.
    error_ = "spool cannot remove " + path + ": " + errno_text(errno);
  }
  bytes_ -= std::min(bytes_, it->size);
  files_.erase(it);
}

}  // namespace lp
