// Retention: deleting the oldest exchanges (row and files together) when they are older than
// log_server.retention.max_age, or while the exchange files exceed max_bytes. An exchange still
// `in_progress` is never deleted. Checked at startup and every minute (RetentionThread).
//
// Crash safety. Each group of up to kRetentionGroupRows rows goes through:
//   1. BEGIN IMMEDIATE; pick the group (oldest first); insert its files into pending_deletions;
//      delete its rows; COMMIT.
//   2. unlink the files (a file already gone is fine);
//   3. fsync the day directories; remove the ones left empty (and fsync data_dir);
//   4. delete the group's pending_deletions rows (one short transaction).
// A kill at any point leaves either the row with both its files, or a pending_deletions entry
// naming files that may or may not still exist: never a row without its files, never a file no
// row or pending entry names. finish_pending_deletions() completes steps 2-4 for whatever a
// crash (or a failed unlink) left listed; startup recovery calls it before its orphan scan, so
// those files are deleted rather than reported as orphans, and every pass calls it first too.
//
// The write lock is held only for step 1 of one group (an index range scan and a few hundred
// row deletions), so ingest, which waits up to busy_timeout for it, is never held up for long.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/config.h"
#include "log-server/blob_store.h"
#include "log-server/metrics.h"
#include "log-server/sqlite.h"

namespace lp::logsrv {

// Rows deleted per write transaction.
inline constexpr size_t kRetentionGroupRows = 256;

// Test hook, never set in production: LP_TEST_RETENTION_INTERVAL_MS=N makes RetentionThread pass
// every N ms instead of every minute.
inline constexpr const char* kTestRetentionIntervalEnv = "LP_TEST_RETENTION_INTERVAL_MS";
// Test hook, never set in production: LP_TEST_RETENTION_CRASH_AT=N kills the process with
// SIGKILL (as kill -9 does) the first time a pass reaches point N of the protocol above, for the
// crash tests. Read when a Retention is constructed. The points, in order:
//   1  group picked, pending entries inserted and rows deleted, before COMMIT (rolled back)
//   2  after COMMIT, before the first unlink
//   3  after the first unlink of the group
//   4  after the last unlink, before the directories are synced
//   5  after the directories are synced, before the pending entries are deleted
inline constexpr const char* kTestRetentionCrashEnv = "LP_TEST_RETENTION_CRASH_AT";

// What to delete; both unset: nothing (keep forever). Pure data, no I/O.
struct RetentionPolicy {
  std::optional<int64_t> max_age_us;
  std::optional<uint64_t> max_bytes;  // sum of request_file_size + response_file_size
  size_t group_rows = kRetentionGroupRows;

  static RetentionPolicy from_config(const lp::RetentionConfig& config);
  bool enabled() const { return max_age_us.has_value() || max_bytes.has_value(); }
};

enum class RetentionReason { kKeep, kAge, kSize };

// Whether an exchange that started at `started_us` goes, when it is the oldest one left and the
// exchange files total `total_bytes`. Age: an exchange exactly max_age old is kept; one
// microsecond older goes. Size: it goes while the total is over max_bytes (equal is fine).
// Rows are visited oldest first, so the first kKeep ends a pass: every later row is younger and
// the total only shrinks.
RetentionReason retention_reason(const RetentionPolicy& policy, int64_t now_us, int64_t started_us,
                                 uint64_t total_bytes);

// "older than 30d", "over 50GiB", "older than 30d / over 50GiB" (the reasons given): for logs.
std::string describe_reasons(const RetentionPolicy& policy, bool age, bool size);

struct RetentionReport {
  uint64_t exchanges = 0;            // rows deleted
  uint64_t bytes = 0;                // their recorded file sizes
  uint64_t by_age = 0;               // ... of which for their age
  uint64_t by_size = 0;              // ... of which to get under max_bytes
  uint64_t files_removed = 0;        // files unlinked (a file already missing is not counted)
  uint64_t pending_removed = 0;      // files of an earlier interrupted pass, removed first
  size_t groups = 0;                 // write transactions that deleted rows
  std::optional<std::string> error;  // the pass stopped here; retried at the next pass
};

// Unlinks the files pending_deletions lists (ENOENT is fine), syncs their directories, removes
// day directories left empty, and empties the list. Returns how many files it removed. Names
// that are not exchange file names (blob_store.h) are dropped from the list without touching
// the disk. Throws SqliteError or DiskError (what is still listed is retried next time).
uint64_t finish_pending_deletions(Database& db, const BlobStore& store);

// One retention pass on a connection. Not thread-safe: one pass at a time per Retention, and
// `db` used by no other thread meanwhile (give it its own connection; ingest works on another
// one and the two serialise on the SQLite write lock). `db`, `store` and `metrics` must
// outlive it.
class Retention {
 public:
  Retention(Database& db, const BlobStore& store, Metrics& metrics, RetentionPolicy policy);

  // Finishes pending deletions, then deletes groups until the policy is met. Never throws for a
  // file or database failure: it stops, rolls back the open group, and reports it in `error`
  // (what was done before stays done). Counts retention_runs, _failures, _exchanges_deleted and
  // _bytes_deleted, and lowers the exchanges gauge.
  RetentionReport run_once(int64_t now_us);

  // A flag that, once true, ends a pass between two groups (RetentionThread::stop()). It must
  // outlive the Retention.
  void set_cancel(const std::atomic<bool>* cancel) { cancel_ = cancel; }

  const RetentionPolicy& policy() const { return policy_; }

 private:
  struct Cursor;
  void run(int64_t now_us, RetentionReport& report);
  // Step 1 for the next group after `cursor`: returns the rows deleted (their files appended to
  // `files`); `done` when nothing after this group is to be deleted.
  size_t delete_group(int64_t now_us, uint64_t& total, Cursor& cursor,
                      std::vector<std::string>& files, bool& done, RetentionReport& report);
  uint64_t total_bytes();
  void crash_point(int point) const;

  Database& db_;
  const BlobStore& store_;
  Metrics& metrics_;
  RetentionPolicy policy_;
  int crash_at_ = 0;  // kTestRetentionCrashEnv, 0 when unset
  const std::atomic<bool>* cancel_ = nullptr;
};

// A background thread that runs a pass at start() and then every `interval`.
//
// Threading and lifetimes: start() and stop() are called from one controlling thread (main).
// The thread opens its own connection to `index_path` (as a writer: it creates only what is
// missing) on its first pass and closes it when it ends; `store` and `metrics` must outlive the
// RetentionThread. stop() wakes the thread at once (a condition variable), waits for the pass
// it may be in (which ends within one group's work), and joins; the destructor calls it.
// A failed pass is counted (retention_failures), logged to stderr as "log-server: retention:
// ...", and retried at the next interval.
class RetentionThread {
 public:
  // `interval` unset: kTestRetentionIntervalEnv when set, else 60 s.
  RetentionThread(std::string index_path, const BlobStore& store, Metrics& metrics,
                  RetentionPolicy policy,
                  std::optional<std::chrono::milliseconds> interval = std::nullopt);
  ~RetentionThread();
  RetentionThread(const RetentionThread&) = delete;
  RetentionThread& operator=(const RetentionThread&) = delete;

  // Starts the thread; false (and nothing runs) when the policy deletes nothing.
  bool start();
  void stop();

  std::chrono::milliseconds interval() const { return interval_; }

 private:
  void loop();
  void pass(std::unique_ptr<Database>& db);

  std::string index_path_;
  const BlobStore& store_;
  Metrics& metrics_;
  RetentionPolicy policy_;
  std::chrono::milliseconds interval_;

  std::mutex mu_;
  std::condition_variable cv_;
  // Set under mu_ (for the condition variable); also read without it by a pass in progress.
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace lp::logsrv
