// The exchange files under data_dir: `{YYYY-MM-DD}/{timestamp}_{id8}_request.bin` and
// `..._response.bin`, directories 0700 and files 0600. A file only ever grows by appends at
// the size the index acknowledges; bytes past that size belong to an attempt that was never
// committed and are cut off before the next append (BatchFiles) or at startup (trim_to).
// Whole files no row names (orphans) are moved aside at startup (quarantine, see recovery.h).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lp::logsrv {

// A failed file operation; `err` is the errno. ENOSPC/EDQUOT mean the disk is full.
class DiskError : public std::runtime_error {
 public:
  DiskError(int err, const std::string& what);
  int err() const { return err_; }
  bool disk_full() const;

 private:
  int err_;
};

// Throws DiskError for the current errno, naming the operation and the path.
[[noreturn]] void throw_disk_error(const std::string& op, const std::string& path);
// Makes the entries of directory `dir` durable (files created, renamed or unlinked in it). A
// directory that is gone has nothing to sync when `missing_ok`. Throws DiskError.
void fsync_directory(const std::string& dir, bool missing_ok = false);

// Where startup recovery moves orphan files: {data_dir}/orphaned/{day}/{name}. It is not a day
// directory name, so it is never scanned as one.
inline constexpr const char* kQuarantineDir = "orphaned";

// Test hook, never set in production: LP_TEST_DISK_QUOTA_FILE names a file holding a byte
// count; an append that would take the exchange files under data_dir beyond it writes what
// fits and fails with ENOSPC, as a full disk does. The file is read at every batch, so a test
// can fill and free the "disk" while the server runs. A missing or unreadable file: no limit.
inline constexpr const char* kTestQuotaEnv = "LP_TEST_DISK_QUOTA_FILE";

// "2025-09-13": a day directory name.
bool is_day_directory_name(std::string_view name);
// Whether `name`, found in day directory `day`, is a name names_for() gives: "{day}_HH-MM-SS.mmm_
// {8 or 36 id chars}_{request|response}.bin", dated `day`. Anything else is not ours.
bool is_blob_file_name(std::string_view day, std::string_view name);

struct FileNames {
  std::string request;  // relative to data_dir
  std::string response;
};

class BlobStore {
 public:
  // Creates data_dir (0700) if needed; throws DiskError.
  explicit BlobStore(std::string data_dir);

  const std::string& root() const { return root_; }
  std::string path(const std::string& relative) const { return root_ + "/" + relative; }

  // "2025-09-13/2025-09-13_02-11-09.123_092d0424_request.bin" and the response twin. With
  // `full_id` the whole id replaces the 8-char prefix: the fallback when two exchanges that
  // started in the same millisecond share their first 8 id characters.
  static FileNames names_for(int64_t started_us, const std::string& id, bool full_id = false);
  bool exists(const std::string& relative) const;

  enum class Trim { kOk, kTrimmed, kMissing, kShort };
  // Cuts `relative` back to `size` bytes when it is longer (and syncs it). kMissing when the
  // file does not exist, kShort when it holds fewer bytes than `size`.
  Trim trim_to(const std::string& relative, int64_t size);

  // Opens a stored file for reading; -1 with errno set on failure.
  int open_read(const std::string& relative) const;

  // The day directories under root, sorted. Throws DiskError.
  std::vector<std::string> day_directories() const;
  // The exchange files in `day` ("day/name", see is_blob_file_name), sorted. Throws DiskError.
  std::vector<std::string> blob_files(const std::string& day) const;
  // Moves `relative` to kQuarantineDir/relative (creating the directories; an older file of the
  // same name there is replaced) and returns its size. Throws DiskError.
  int64_t quarantine(const std::string& relative);

 private:
  std::string root_;
};

// The files one ingest batch writes. Policy: a file is opened on its first use in the batch
// (created when needed, then truncated to the size the index acknowledges, which undoes any
// bytes an uncommitted earlier attempt appended), appended to with pwritev at the known size,
// synced by sync(), and closed when the BatchFiles is destroyed. Files are opened relative to
// their day directory, whose descriptor is opened once per batch and fsynced once by sync()
// when the batch created entries in it. No descriptor outlives a
// batch, so a rolled-back batch leaves nothing cached and the descriptor count is bounded by
// the files one batch touches. Appends to one file are gathered and written together when
// another file is appended to, or at sync(): an exchange's head and body pieces cost one
// write. The gathered bytes are not copied: they must stay valid until the next append to
// another file or sync() (they point into the decoded batch).
class BatchFiles {
 public:
  explicit BatchFiles(const BlobStore& store) : store_(store) {}
  ~BatchFiles();
  BatchFiles(const BatchFiles&) = delete;
  BatchFiles& operator=(const BatchFiles&) = delete;

  // Makes sure the file exists (used at the begin frame for the request file).
  void touch(const std::string& relative, int64_t acked_size);
  // Creates the file, empty, and opens it; false (nothing opened) when it exists already.
  // One open(O_CREAT | O_EXCL): the begin frame's usual case needs no look-up first.
  bool create(const std::string& relative);
  // Appends `data` (see above for how long it must stay valid); returns the file's new size.
  // `acked_size` matters on first use only. Throws DiskError.
  int64_t append(const std::string& relative, int64_t acked_size, std::string_view data);
  // Writes the gathered pieces of the file they belong to (not synced): another BatchFiles
  // may then open the same file. Throws DiskError.
  void flush();
  // Writes what is gathered, fdatasyncs every touched file (or one syncfs when many), then
  // fsyncs the directories that gained entries. Throws DiskError.
  void sync() { sync_all({this}); }
  // The same for the files of several batches applied in one transaction: one syncfs (or
  // the fdatasyncs) for all of them. Throws DiskError.
  static void sync_all(const std::vector<BatchFiles*>& batches);

  size_t files() const { return open_.size(); }
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  struct OpenFile {
    int fd = -1;
    int64_t size = 0;  // on disk; gathered bytes follow
  };
  OpenFile& open(const std::string& relative, int64_t acked_size);
  // open(O_CREAT | O_EXCL) of `relative`: its descriptor, or -1 with errno set (EEXIST: it
  // exists). Creates the day directory when needed.
  int create_fd(const std::string& relative);
  // The day directory's descriptor (created when needed): files are opened relative to it,
  // and it is what sync() fsyncs when it gained entries.
  int dir_fd(const std::string& relative_dir);

  const BlobStore& store_;
  std::unordered_map<std::string, OpenFile> open_;
  // Pieces gathered for one file (`gathered_file_`, a key of open_), not yet written.
  const std::string* gathered_file_ = nullptr;
  std::vector<std::string_view> gathered_;
  uint64_t gathered_bytes_ = 0;
  std::unordered_map<std::string, int> dir_fds_;  // day directories used in this batch
  std::set<std::string> dirty_dirs_;  // day directories (keys of dir_fds_) that gained entries
  bool root_dirty_ = false;           // a day directory was created
  uint64_t bytes_written_ = 0;
  // The test quota (kTestQuotaEnv), read on the first append of the batch, and the bytes of
  // exchange files under data_dir at that moment.
  bool quota_read_ = false;
  std::optional<uint64_t> quota_;
  uint64_t quota_base_ = 0;
};

}  // namespace lp::logsrv
