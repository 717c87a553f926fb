#include "log-server/retention.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <set>
#include <vector>

#include "common/thread_name.h"
#include "log-server/index_schema.h"

namespace lp::logsrv {

namespace {

constexpr auto kDefaultInterval = std::chrono::seconds(60);

// "2025-09-13/..." -> "2025-09-13" when `relative` is an exchange file name, else "". Only such
// names are ever unlinked, whatever the index says.
std::string day_of(const std::string& relative) {
  size_t slash = relative.find('/');
  if (slash == std::string::npos) return "";
  std::string day = relative.substr(0, slash);
  return is_blob_file_name(day, std::string_view(relative).substr(slash + 1)) ? day : "";
}

std::optional<int> env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n <= 0 || n > 1000L * 1000 * 1000) return std::nullopt;
  return static_cast<int>(n);
}

// Exact units only ("30d", "36h", "90m"), so the line repeats what the config said.
std::string format_age(int64_t us) {
  struct Unit {
    int64_t us;
    const char* suffix;
  };
  static constexpr Unit kUnits[] = {{86400LL * 1000000, "d"},
                                    {3600LL * 1000000, "h"},
                                    {60LL * 1000000, "m"},
                                    {1000000, "s"},
                                    {1000, "ms"},
                                    {1, "us"}};
  for (const Unit& u : kUnits) {
    if (us != 0 && us % u.us == 0) return std::to_string(us / u.us) + u.suffix;
  }
  return std::to_string(us) + "us";
}

std::string format_bytes(uint64_t n) {
  static constexpr const char* kUnits[] = {"TiB", "GiB", "MiB", "KiB"};
  for (int i = 0; i < 4; ++i) {
    uint64_t unit = 1ULL << (10 * (4 - i));
    if (n != 0 && n % unit == 0) return std::to_string(n / unit) + kUnits[i];
  }
  return std::to_string(n) + " bytes";
}

// kTestRetentionCrashEnv: point `point` of the protocol (retention.h) ends the process as
// kill -9 would: no destructor, no flush, no rollback.
void maybe_crash(int crash_at, int point) {
  if (crash_at != point) return;
  // One write(2): std::cerr writes each << piece on its own, and another thread's stdout line
  // (the same pipe under a test) could land inside this one.
  const std::string line = std::string("log-server: TEST HOOK ") + kTestRetentionCrashEnv + "=" +
                           std::to_string(point) + ": SIGKILL now\n";
  [[maybe_unused]] ssize_t n = ::write(2, line.data(), line.size());
  ::kill(::getpid(), SIGKILL);
  ::_exit(128 + SIGKILL);  // not reached: SIGKILL to oneself is delivered before kill() returns
}

// Steps 2-4 of the protocol for `files`, which pending_deletions lists: unlink, sync the day
// directories, remove those left empty, unlist. Returns the files unlinked.
uint64_t remove_listed(Database& db, const BlobStore& store, const std::vector<std::string>& files,
                       int crash_at) {
  uint64_t removed = 0;
  std::set<std::string> days;
  for (size_t i = 0; i < files.size(); ++i) {
    std::string day = day_of(files[i]);
    if (!day.empty()) {
      days.insert(day);
      const std::string p = store.path(files[i]);
      if (::unlink(p.c_str()) == 0) {
        ++removed;
      } else if (errno != ENOENT) {  // gone already: a crash came after the unlink last time
        throw_disk_error("unlink", p);
      }
    }
    if (i == 0) maybe_crash(crash_at, 3);
  }
  if (!files.empty()) maybe_crash(crash_at, 4);
  bool removed_dir = false;
  for (const std::string& day : days) {
    const std::string dir = store.path(day);
    fsync_directory(dir, /*missing_ok=*/true);
    // Fails (ENOTEMPTY) unless the directory is empty: rmdir itself is the check, so a file
    // ingest creates meanwhile is never at risk. A day directory left behind is harmless.
    if (::rmdir(dir.c_str()) == 0) removed_dir = true;
  }
  if (removed_dir) fsync_directory(store.root(), /*missing_ok=*/true);
  maybe_crash(crash_at, 5);
  db.exec("BEGIN IMMEDIATE");
  try {
    Statement& s = db.cached("DELETE FROM pending_deletions WHERE file = ?1");
    for (const std::string& f : files) {
      StatementScope scope(s);
      s.bind(1, f);
      s.step();
    }
    db.exec("COMMIT");
  } catch (...) {
    db.rollback();
    throw;
  }
  return removed;
}

}  // namespace

RetentionPolicy RetentionPolicy::from_config(const lp::RetentionConfig& config) {
  RetentionPolicy p;
  if (config.max_age) {
    p.max_age_us = std::chrono::duration_cast<std::chrono::microseconds>(*config.max_age).count();
  }
  p.max_bytes = config.max_bytes;
  return p;
}

RetentionReason retention_reason(const RetentionPolicy& policy, int64_t now_us, int64_t started_us,
                                 uint64_t total_bytes) {
  if (policy.max_age_us && now_us - started_us > *policy.max_age_us) return RetentionReason::kAge;
  if (policy.max_bytes && total_bytes > *policy.max_bytes) return RetentionReason::kSize;
  return RetentionReason::kKeep;
}

std::string describe_reasons(const RetentionPolicy& policy, bool age, bool size) {
  std::string out;
  if (age && policy.max_age_us) out = "older than " + format_age(*policy.max_age_us);
  if (size && policy.max_bytes) {
    out += (out.empty() ? "" : " / ") + std::string("over ") + format_bytes(*policy.max_bytes);
  }
  return out;
}

uint64_t finish_pending_deletions(Database& db, const BlobStore& store) {
  uint64_t removed = 0;
  Statement& s = db.cached("SELECT file FROM pending_deletions ORDER BY file LIMIT ?1");
  for (;;) {
    std::vector<std::string> files;
    {
      StatementScope scope(s);
      s.bind(1, static_cast<int64_t>(kRetentionGroupRows * 2));
      while (s.step()) files.push_back(s.text(0));
    }
    if (files.empty()) return removed;
    // Every listed name is unlisted (or this throws), so the loop ends.
    removed += remove_listed(db, store, files, /*crash_at=*/0);
  }
}

// --- Retention -----------------------------------------------------------------------------------

// Keyset position in (started_us, id) order: the last row a pass looked at, so rows it passed
// over (in progress) are not read again by the next group.
struct Retention::Cursor {
  bool set = false;
  int64_t started_us = 0;
  std::string id;
};

Retention::Retention(Database& db, const BlobStore& store, Metrics& metrics, RetentionPolicy policy)
    : db_(db), store_(store), metrics_(metrics), policy_(policy) {
  if (policy_.group_rows == 0) policy_.group_rows = kRetentionGroupRows;
  crash_at_ = env_int(kTestRetentionCrashEnv).value_or(0);
}

void Retention::crash_point(int point) const {
  maybe_crash(crash_at_, point);
}

uint64_t Retention::total_bytes() {
  Statement& s =
      db_.cached("SELECT COALESCE(SUM(request_file_size + response_file_size), 0) FROM exchanges");
  StatementScope scope(s);
  if (!s.step()) return 0;
  int64_t v = s.int64(0);
  return v > 0 ? static_cast<uint64_t>(v) : 0;
}

size_t Retention::delete_group(int64_t now_us, uint64_t& total, Cursor& cursor,
                               std::vector<std::string>& files, bool& done,
                               RetentionReport& report) {
  struct Row {
    int64_t started_us;
    std::string id;
    bool in_progress;
    std::string request_file;
    std::optional<std::string> response_file;
    uint64_t bytes;
  };
  db_.exec("BEGIN IMMEDIATE");
  try {
    // The oldest rows after the cursor: one range scan of exchanges_by_time.
    std::vector<Row> rows;
    {
      Statement& s = db_.cached(
          "SELECT started_us, id, outcome, request_file, response_file, request_file_size, "
          "response_file_size FROM exchanges WHERE ?1 = 0 OR (started_us, id) > (?2, ?3) "
          "ORDER BY started_us, id LIMIT ?4");
      StatementScope scope(s);
      s.bind(1, cursor.set ? 1 : 0)
          .bind(2, cursor.started_us)
          .bind(3, cursor.id)
          .bind(4, static_cast<int64_t>(policy_.group_rows));
      while (s.step()) {
        int64_t sizes = std::max<int64_t>(s.int64(5), 0) + std::max<int64_t>(s.int64(6), 0);
        rows.push_back({s.int64(0), s.text(1), s.text(2) == kInProgress, s.text(3), s.opt_text(4),
                        static_cast<uint64_t>(sizes)});
      }
    }
    done = rows.size() < policy_.group_rows;  // the table ends within this group
    std::vector<const Row*> victims;
    uint64_t age = 0, size = 0, bytes = 0;
    for (const Row& row : rows) {
      RetentionReason why = retention_reason(policy_, now_us, row.started_us, total);
      if (why == RetentionReason::kKeep) {
        done = true;
        break;
      }
      cursor = {true, row.started_us, row.id};
      if (row.in_progress) continue;  // never: its files are still being written
      victims.push_back(&row);
      total -= std::min(total, row.bytes);
      bytes += row.bytes;
      (why == RetentionReason::kAge ? age : size) += 1;
    }
    if (victims.empty()) {
      db_.exec("ROLLBACK");  // nothing changed
      return 0;
    }
    Statement& pend = db_.cached("INSERT OR IGNORE INTO pending_deletions(file) VALUES (?1)");
    Statement& del = db_.cached("DELETE FROM exchanges WHERE id = ?1");
    for (const Row* row : victims) {
      for (const std::optional<std::string>& f :
           {std::optional(row->request_file), row->response_file}) {
        if (!f) continue;
        StatementScope scope(pend);
        pend.bind(1, *f);
        pend.step();
        files.push_back(*f);
      }
      StatementScope scope(del);
      del.bind(1, row->id);
      del.step();
    }
    crash_point(1);
    db_.exec("COMMIT");
    // Counted as soon as the rows are gone: the files are now the pending list's business.
    report.exchanges += victims.size();
    report.bytes += bytes;
    report.by_age += age;
    report.by_size += size;
    ++report.groups;
    metrics_.retention_exchanges_deleted.fetch_add(victims.size(), std::memory_order_relaxed);
    metrics_.retention_bytes_deleted.fetch_add(bytes, std::memory_order_relaxed);
    metrics_.exchanges.fetch_sub(static_cast<int64_t>(victims.size()), std::memory_order_relaxed);
    return victims.size();
  } catch (...) {
    db_.rollback();
    throw;
  }
}

void Retention::run(int64_t now_us, RetentionReport& report) {
  report.pending_removed = finish_pending_deletions(db_, store_);
  // Computed once per pass, outside the write lock: bytes ingest adds meanwhile are seen by the
  // next pass. Only needed for max_bytes (it is a full scan of the table).
  uint64_t total = policy_.max_bytes ? total_bytes() : 0;
  Cursor cursor;
  for (bool done = false; !done;) {
    if (cancel_ && cancel_->load(std::memory_order_relaxed)) return;  // the server is stopping
    std::vector<std::string> files;
    if (delete_group(now_us, total, cursor, files, done, report) == 0) continue;
    crash_point(2);
    report.files_removed += remove_listed(db_, store_, files, crash_at_);
  }
}

RetentionReport Retention::run_once(int64_t now_us) {
  RetentionReport report;
  if (policy_.enabled()) {
    try {
      run(now_us, report);
    } catch (const std::exception& e) {
      report.error = e.what();
      metrics_.retention_failures.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // Counted once the pass is over, so a reader that sees the count also sees what it did.
  metrics_.retention_runs.fetch_add(1, std::memory_order_relaxed);
  return report;
}

// --- RetentionThread -----------------------------------------------------------------------------

RetentionThread::RetentionThread(std::string index_path, const BlobStore& store, Metrics& metrics,
                                 RetentionPolicy policy,
                                 std::optional<std::chrono::milliseconds> interval)
    : index_path_(std::move(index_path)),
      store_(store),
      metrics_(metrics),
      policy_(policy),
      interval_(kDefaultInterval) {
  if (interval) {
    interval_ = *interval;
  } else if (auto ms = env_int(kTestRetentionIntervalEnv)) {
    interval_ = std::chrono::milliseconds(*ms);
    std::cerr << "log-server: TEST HOOK " << kTestRetentionIntervalEnv << "=" << *ms
              << " is set: retention passes every " << *ms << " ms\n";
  }
  if (auto at = env_int(kTestRetentionCrashEnv)) {
    std::cerr << "log-server: TEST HOOK " << kTestRetentionCrashEnv << "=" << *at
              << " is set: retention kills the process at protocol point " << *at << "\n";
  }
}

RetentionThread::~RetentionThread() {
  stop();
}

bool RetentionThread::start() {
  if (!policy_.enabled() || thread_.joinable()) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] {
    name_this_thread("ls-retention");
    loop();
  });
  return true;
}

void RetentionThread::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RetentionThread::loop() {
  std::unique_ptr<Database> db;  // this thread's own connection
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    pass(db);
    lock.lock();
    cv_.wait_for(lock, interval_, [this] { return stopping_.load(); });
  }
}

void RetentionThread::pass(std::unique_ptr<Database>& db) {
  try {
    if (!db) db = open_index(index_path_, /*writer=*/true);
  } catch (const std::exception& e) {
    metrics_.retention_runs.fetch_add(1, std::memory_order_relaxed);
    metrics_.retention_failures.fetch_add(1, std::memory_order_relaxed);
    std::cerr << "log-server: retention: cannot open the index " << index_path_ << ": " << e.what()
              << "\n";
    return;
  }
  const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  Retention retention(*db, store_, metrics_, policy_);
  retention.set_cancel(&stopping_);
  RetentionReport r = retention.run_once(now_us);
  if (r.pending_removed > 0) {
    std::cerr << "log-server: retention: finished an interrupted deletion, " << r.pending_removed
              << " file(s) removed\n";
  }
  if (r.exchanges > 0) {
    std::cerr << "log-server: retention: deleted " << r.exchanges << " exchange(s), " << r.bytes
              << " bytes (" << describe_reasons(policy_, r.by_age > 0, r.by_size > 0) << ")\n";
  }
  if (r.error) {
    std::cerr << "log-server: retention: " << *r.error << " (retried in " << interval_.count()
              << " ms)\n";
    db.reset();  // a fresh connection next time, in case this one is what broke
  }
}

}  // namespace lp::logsrv
