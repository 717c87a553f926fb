// Retention on real files and a real SQLite index in a temp dir: which exchanges go (age, size,
// both, never one in progress), that rows and files go together, pending deletions finished,
// group boundaries, metrics, failures as values, a SIGKILL at every point of the protocol (in a
// forked child), and the background thread.
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/time_format.h"
#include "log-server/blob_store.h"
#include "log-server/index_schema.h"
#include "log-server/index_writer.h"
#include "log-server/metrics.h"
#include "log-server/recovery.h"
#include "log-server/retention.h"
#include "tests/support/await.h"
#include "tests/support/temp_dir.h"

using namespace lp;
using namespace lp::logsrv;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr int64_t kUsPerDay = 86400LL * 1000000;
constexpr int64_t kNow = 1758369600LL * 1000000;  // 2025-09-20T12:00:00Z
constexpr int64_t k30d = 30 * kUsPerDay;

using lp::test::await;
using lp::test::TempDir;

void write_bytes(const std::string& path, int64_t n) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << std::string(static_cast<size_t>(n), 'x');
}

std::string id_for(int n) {
  char id[40];
  std::snprintf(id, sizeof id, "%08x-0000-4000-8000-%012d", 0x0a000000 + n, n);
  return id;
}

RetentionPolicy age_policy(int64_t max_age_us) {
  RetentionPolicy p;
  p.max_age_us = max_age_us;
  return p;
}

RetentionPolicy size_policy(uint64_t max_bytes) {
  RetentionPolicy p;
  p.max_bytes = max_bytes;
  return p;
}

struct Store {
  TempDir dir;
  std::string data = dir.path() + "/data";
  std::string index = data + "/index.sqlite";
  BlobStore blobs{data};
  std::unique_ptr<Database> db = open_index(index, true);
  Metrics metrics;
  int next = 0;

  // An exchange started at `started_us` (a new id each time) with a request file of `request`
  // bytes and, unless nullopt, a response file of `response` bytes, both on disk.
  ExchangeRow add(int64_t started_us, int64_t request, std::optional<int64_t> response = 100,
                  const std::string& outcome = "complete", bool write_files = true) {
    ExchangeRow r;
    r.id = id_for(next++);
    r.short_id = r.id.substr(0, 8);
    r.started_us = started_us;
    r.started_at = format_rfc3339_us(started_us);
    r.route = "mock";
    r.method = "POST";
    r.proxy_path = "/mock/x";
    r.destination = "http://127.0.0.1:9/x";
    r.client_ip = "127.0.0.1";
    r.outcome = outcome;
    r.proxy_id = "p1";
    r.ingested_at = r.started_at;
    FileNames names = BlobStore::names_for(started_us, r.id);
    r.request_file = names.request;
    r.request_file_size = request;
    if (write_files) {
      fs::create_directories(data + "/" + day_directory(started_us));
      write_bytes(blobs.path(names.request), request);
    }
    if (response) {
      r.response_file = names.response;
      r.response_file_size = *response;
      if (write_files) write_bytes(blobs.path(names.response), *response);
    }
    IndexWriter(*db).insert(r);
    metrics.exchanges += 1;
    return r;
  }

  RetentionReport run(const RetentionPolicy& policy, int64_t now = kNow) {
    Retention retention(*db, blobs, metrics, policy);
    RetentionReport r = retention.run_once(now);
    INFO(r.error.value_or(""));
    CHECK_FALSE(r.error);
    return r;
  }

  // The ids left, oldest first.
  std::vector<std::string> ids() {
    Statement& s = db->cached("SELECT id FROM exchanges ORDER BY started_us, id");
    StatementScope scope(s);
    std::vector<std::string> out;
    while (s.step()) out.push_back(s.text(0));
    return out;
  }
  std::vector<std::string> pending() {
    Statement& s = db->cached("SELECT file FROM pending_deletions ORDER BY file");
    StatementScope scope(s);
    std::vector<std::string> out;
    while (s.step()) out.push_back(s.text(0));
    return out;
  }
  void add_pending(const std::string& file) {
    Statement& s = db->cached("INSERT INTO pending_deletions(file) VALUES (?1)");
    StatementScope scope(s);
    s.bind(1, file);
    s.step();
  }
  std::vector<ExchangeRow> rows() {
    Statement& s = db->cached(std::string("SELECT ") + kExchangeColumns + " FROM exchanges");
    StatementScope scope(s);
    std::vector<ExchangeRow> out;
    while (s.step()) out.push_back(read_exchange_row(s));
    return out;
  }
  // Exchange files in the day directories.
  std::set<std::string> files() {
    std::set<std::string> out;
    for (const std::string& day : blobs.day_directories()) {
      for (const std::string& f : blobs.blob_files(day)) out.insert(f);
    }
    return out;
  }
  bool exists(const std::string& relative) { return fs::exists(data + "/" + relative); }

  // The invariant retention keeps at every instant: every row's files exist with their
  // recorded sizes, and every exchange file is named by a row or a pending entry.
  void check_consistent() {
    std::set<std::string> named;
    for (const ExchangeRow& r : rows()) {
      CAPTURE(r.id);
      std::error_code ec;
      CHECK(fs::file_size(blobs.path(r.request_file), ec) ==
            static_cast<uintmax_t>(r.request_file_size));
      CHECK_FALSE(ec);
      named.insert(r.request_file);
      if (r.response_file) {
        CHECK(fs::file_size(blobs.path(*r.response_file), ec) ==
              static_cast<uintmax_t>(r.response_file_size));
        CHECK_FALSE(ec);
        named.insert(*r.response_file);
      }
    }
    for (const std::string& p : pending()) named.insert(p);
    for (const std::string& f : files()) CHECK_MESSAGE(named.count(f), "unlisted file " << f);
  }
};

std::vector<std::string> ids_of(const std::vector<ExchangeRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.id);
  return out;
}

}  // namespace

TEST_CASE("retention: policy from the config, boundaries, and how it is described") {
  lp::RetentionConfig c;
  CHECK_FALSE(RetentionPolicy::from_config(c).enabled());
  c.max_age = std::chrono::hours(24 * 30);
  c.max_bytes = 50ULL << 30;
  RetentionPolicy p = RetentionPolicy::from_config(c);
  CHECK(p.enabled());
  CHECK(p.max_age_us == k30d);
  CHECK(p.max_bytes == (50ULL << 30));
  CHECK(describe_reasons(p, true, true) == "older than 30d / over 50GiB");
  CHECK(describe_reasons(p, true, false) == "older than 30d");
  CHECK(describe_reasons(p, false, true) == "over 50GiB");
  CHECK(describe_reasons(age_policy(90 * 60 * 1000000LL), true, false) == "older than 90m");
  CHECK(describe_reasons(size_policy(1000), false, true) == "over 1000 bytes");

  // Exactly max_age old is kept; a microsecond more goes. Exactly max_bytes is fine.
  CHECK(retention_reason(p, kNow, kNow - k30d, 0) == RetentionReason::kKeep);
  CHECK(retention_reason(p, kNow, kNow - k30d - 1, 0) == RetentionReason::kAge);
  CHECK(retention_reason(p, kNow, kNow, 50ULL << 30) == RetentionReason::kKeep);
  CHECK(retention_reason(p, kNow, kNow, (50ULL << 30) + 1) == RetentionReason::kSize);
  CHECK(retention_reason(RetentionPolicy{}, kNow, 0, UINT64_MAX) == RetentionReason::kKeep);
}

TEST_CASE("retention: by age, oldest first - one exactly max_age old is kept") {
  Store s;
  ExchangeRow a = s.add(kNow - 40 * kUsPerDay, 1000, 500);
  ExchangeRow b = s.add(kNow - 31 * kUsPerDay, 2000, std::nullopt);  // no response file
  ExchangeRow c = s.add(kNow - k30d - 1, 300, 30);
  ExchangeRow d = s.add(kNow - k30d, 400, 40);  // exactly 30 days: kept
  ExchangeRow e = s.add(kNow - 2 * kUsPerDay, 500, 50);
  const std::string day_a = day_directory(a.started_us), day_c = day_directory(c.started_us);
  REQUIRE(day_c == day_directory(d.started_us));  // c and d share a day directory

  RetentionReport r = s.run(age_policy(k30d));
  CHECK(r.exchanges == 3);
  CHECK(r.by_age == 3);
  CHECK(r.by_size == 0);
  CHECK(r.bytes == 1000 + 500 + 2000 + 300 + 30);
  CHECK(r.files_removed == 5);
  CHECK(r.groups == 1);
  CHECK(s.ids() == ids_of({d, e}));
  for (const ExchangeRow& gone : {a, b, c}) {
    CHECK_FALSE(s.exists(gone.request_file));
    if (gone.response_file) CHECK_FALSE(s.exists(*gone.response_file));
  }
  CHECK(s.files() ==
        std::set<std::string>{d.request_file, *d.response_file, e.request_file, *e.response_file});
  CHECK(s.pending().empty());
  // A day directory left empty is removed; one still holding files stays.
  CHECK_FALSE(fs::exists(s.data + "/" + day_a));
  CHECK(fs::exists(s.data + "/" + day_c));

  CHECK(s.metrics.retention_runs == 1);
  CHECK(s.metrics.retention_exchanges_deleted == 3);
  CHECK(s.metrics.retention_bytes_deleted == r.bytes);
  CHECK(s.metrics.retention_failures == 0);
  CHECK(s.metrics.exchanges == 2);

  // A second pass finds nothing more; a day later d goes too.
  CHECK(s.run(age_policy(k30d)).exchanges == 0);
  CHECK(s.run(age_policy(k30d), kNow + kUsPerDay).exchanges == 1);
  CHECK(s.ids() == ids_of({e}));
  CHECK(s.metrics.retention_runs == 3);
}

TEST_CASE("retention: by size, just enough of the oldest") {
  Store s;
  std::vector<ExchangeRow> rows;
  // 10 exchanges of 1000 bytes each (600 + 400), a minute apart: 10000 bytes.
  for (int i = 0; i < 10; ++i) rows.push_back(s.add(kNow - (10 - i) * 60000000LL, 600, 400));
  uint64_t max = 0;
  size_t gone = 0;
  SUBCASE("a limit between two totals") {
    max = 6500;
    gone = 4;
  }
  SUBCASE("a limit equal to a total") {
    max = 6000;
    gone = 4;
  }
  SUBCASE("one byte under the total") {
    max = 9999;
    gone = 1;
  }
  SUBCASE("the total itself") {
    max = 10000;
    gone = 0;
  }
  CAPTURE(max);
  RetentionReport r = s.run(size_policy(max));
  CHECK(r.exchanges == gone);
  CHECK(r.by_size == gone);
  CHECK(r.bytes == gone * 1000);
  CHECK(s.ids() == ids_of({rows.begin() + static_cast<long>(gone), rows.end()}));
  CHECK(s.files().size() == 2 * (10 - gone));
  CHECK(s.metrics.retention_bytes_deleted == gone * 1000);
  s.check_consistent();
}

TEST_CASE("retention: age first, then size for what is left") {
  Store s;
  ExchangeRow old1 = s.add(kNow - 50 * kUsPerDay, 100, 100);
  ExchangeRow old2 = s.add(kNow - 40 * kUsPerDay, 100, 100);
  ExchangeRow mid1 = s.add(kNow - 10 * kUsPerDay, 1000, 1000);
  ExchangeRow mid2 = s.add(kNow - 5 * kUsPerDay, 1000, 1000);
  ExchangeRow young = s.add(kNow - kUsPerDay, 1000, 1000);
  RetentionPolicy p = age_policy(k30d);
  p.max_bytes = 4500;  // after the two old ones: 6000 bytes; mid1 must go too
  RetentionReport r = s.run(p);
  CHECK(r.exchanges == 3);
  CHECK(r.by_age == 2);
  CHECK(r.by_size == 1);
  CHECK(s.ids() == ids_of({mid2, young}));
  CHECK(s.files().size() == 4);
  s.check_consistent();
}

TEST_CASE("retention: an exchange in progress is never deleted, even the oldest") {
  Store s;
  ExchangeRow running = s.add(kNow - 90 * kUsPerDay, 5000, std::nullopt, kInProgress);
  ExchangeRow a = s.add(kNow - 60 * kUsPerDay, 100, 100);
  ExchangeRow running2 = s.add(kNow - 50 * kUsPerDay, 100, 100, kInProgress);
  ExchangeRow b = s.add(kNow - 40 * kUsPerDay, 100, 100);
  ExchangeRow c = s.add(kNow - kUsPerDay, 100, 100);
  SUBCASE("by age") {
    RetentionReport r = s.run(age_policy(k30d));
    CHECK(r.exchanges == 2);
    CHECK(s.ids() == ids_of({running, running2, c}));
  }
  SUBCASE("by size: everything else goes, the in-progress bytes still count") {
    RetentionReport r = s.run(size_policy(1));
    CHECK(r.exchanges == 3);
    CHECK(s.ids() == ids_of({running, running2}));
  }
  CHECK(s.exists(running.request_file));
  CHECK(s.exists(*running2.response_file));
  s.check_consistent();
  // Once it has ended it goes like any other.
  s.db->exec("UPDATE exchanges SET outcome = 'complete' WHERE id = '" + running.id + "'");
  CHECK(s.run(age_policy(k30d)).exchanges == 1);
  CHECK_FALSE(s.exists(running.request_file));
}

TEST_CASE("retention: files already missing are fine") {
  Store s;
  ExchangeRow a = s.add(kNow - 40 * kUsPerDay, 100, 100);
  ExchangeRow b = s.add(kNow - 39 * kUsPerDay, 100, 100);
  fs::remove(s.blobs.path(a.request_file));
  fs::remove(s.blobs.path(*a.response_file));
  fs::remove(s.blobs.path(*b.response_file));
  RetentionReport r = s.run(age_policy(k30d));
  CHECK(r.exchanges == 2);
  CHECK(r.files_removed == 1);
  CHECK(r.bytes == 400);  // what the rows recorded
  CHECK(s.ids().empty());
  CHECK(s.files().empty());
  CHECK(s.pending().empty());
}

TEST_CASE("retention: deletions a crash left pending are finished, never reported as orphans") {
  Store s;
  ExchangeRow keep = s.add(kNow - kUsPerDay, 100, 100);
  ExchangeRow gone = s.add(kNow - 40 * kUsPerDay, 100, 100);
  // As a crash after COMMIT leaves it: the row deleted, its files listed (one already unlinked).
  s.db->exec("DELETE FROM exchanges WHERE id = '" + gone.id + "'");
  s.add_pending(gone.request_file);
  s.add_pending(*gone.response_file);
  fs::remove(s.blobs.path(*gone.response_file));
  // Names that are not exchange files are unlisted, never unlinked.
  write_bytes(s.data + "/precious", 10);
  s.add_pending("precious");
  s.add_pending("../precious");
  s.add_pending(day_directory(keep.started_us) + "/../precious");

  CHECK(finish_pending_deletions(*s.db, s.blobs) == 1);
  CHECK(s.pending().empty());
  CHECK_FALSE(s.exists(gone.request_file));
  CHECK(fs::exists(s.data + "/precious"));
  CHECK_FALSE(fs::exists(s.data + "/" + day_directory(gone.started_us)));
  CHECK(s.files() == std::set<std::string>{keep.request_file, *keep.response_file});
  CHECK(finish_pending_deletions(*s.db, s.blobs) == 0);  // nothing left

  // Startup order: finish first, then the orphan scan finds nothing of retention's.
  ExchangeRow gone2 = s.add(kNow - 41 * kUsPerDay, 100, 100);
  s.db->exec("DELETE FROM exchanges WHERE id = '" + gone2.id + "'");
  s.add_pending(gone2.request_file);
  s.add_pending(*gone2.response_file);
  CHECK(finish_pending_deletions(*s.db, s.blobs) == 2);
  IndexWriter writer(*s.db);
  RecoveryReport rec = recover(writer, s.blobs);
  CHECK(rec.orphans == 0);
  CHECK_FALSE(fs::exists(s.data + "/" + kQuarantineDir));

  // A pass finishes what is pending before anything else.
  ExchangeRow gone3 = s.add(kNow - 42 * kUsPerDay, 100, 100);
  s.db->exec("DELETE FROM exchanges WHERE id = '" + gone3.id + "'");
  s.add_pending(gone3.request_file);
  s.add_pending(*gone3.response_file);
  RetentionReport r = s.run(age_policy(k30d));
  CHECK(r.pending_removed == 2);
  CHECK(r.exchanges == 0);
  CHECK(s.pending().empty());
  CHECK(s.files() == std::set<std::string>{keep.request_file, *keep.response_file});
}

TEST_CASE("retention: 600 rows go in groups of 256, in-progress ones skipped across groups") {
  Store s;
  std::vector<ExchangeRow> kept;
  s.db->exec("BEGIN");
  for (int i = 0; i < 600; ++i) {
    // 400 s apart (about 3 day directories); every 97th still in progress.
    const bool running = i % 97 == 50;
    ExchangeRow r =
        s.add(kNow - 40 * kUsPerDay + i * 400000000LL, 10, 20, running ? kInProgress : "complete");
    if (running) kept.push_back(r);
  }
  s.db->exec("COMMIT");
  ExchangeRow young = s.add(kNow - kUsPerDay, 10, 20);
  kept.push_back(young);
  RetentionReport r = s.run(age_policy(k30d));
  CHECK(r.exchanges == 600 - (kept.size() - 1));
  CHECK(r.groups == 3);  // 256 + 256 + 88 rows looked at
  CHECK(r.bytes == r.exchanges * 30);
  CHECK(r.files_removed == 2 * r.exchanges);
  CHECK(s.ids() == ids_of(kept));
  CHECK(s.files().size() == 2 * kept.size());
  CHECK(s.pending().empty());
  CHECK(s.metrics.retention_exchanges_deleted == r.exchanges);
  CHECK(s.metrics.exchanges == static_cast<int64_t>(kept.size()));
  s.check_consistent();

  // Small groups: each a transaction of its own, the same result.
  Store t;
  for (int i = 0; i < 20; ++i) t.add(kNow - 40 * kUsPerDay + i, 10, 20);
  RetentionPolicy p = size_policy(30 * 5);
  p.group_rows = 3;
  RetentionReport rt = t.run(p);
  CHECK(rt.exchanges == 15);
  CHECK(rt.groups == 5);
  CHECK(t.ids().size() == 5);
}

TEST_CASE("retention: a failed unlink is a counted failure, retried by the next pass") {
  Store s;
  ExchangeRow a = s.add(kNow - 40 * kUsPerDay, 100, 100);
  ExchangeRow b = s.add(kNow - 39 * kUsPerDay, 100, 100);
  // b's request file is a directory, which unlink() refuses (EISDIR), even for root.
  fs::remove(s.blobs.path(b.request_file));
  fs::create_directories(s.blobs.path(b.request_file) + "/inside");
  Retention retention(*s.db, s.blobs, s.metrics, age_policy(k30d));
  RetentionReport r = retention.run_once(kNow);
  REQUIRE(r.error);
  CHECK(r.error->find("unlink") != std::string::npos);
  CHECK(r.exchanges == 2);  // the rows went; their files are listed
  CHECK(s.ids().empty());
  CHECK(s.pending().size() >= 1);
  CHECK(s.metrics.retention_failures == 1);
  CHECK(s.metrics.retention_runs == 1);
  s.check_consistent();

  fs::remove_all(s.blobs.path(b.request_file));
  r = retention.run_once(kNow);
  CHECK_FALSE(r.error);
  CHECK(s.pending().empty());
  CHECK(s.files().empty());
  CHECK(s.metrics.retention_failures == 1);
  CHECK(s.metrics.retention_exchanges_deleted == 2);
}

TEST_CASE("retention: a pass stops between groups once cancelled") {
  Store s;
  for (int i = 0; i < 10; ++i) s.add(kNow - 40 * kUsPerDay + i, 10, 20);
  RetentionPolicy p = age_policy(k30d);
  p.group_rows = 4;
  std::atomic<bool> cancel{true};
  Retention retention(*s.db, s.blobs, s.metrics, p);
  retention.set_cancel(&cancel);
  CHECK(retention.run_once(kNow).exchanges == 0);
  CHECK(s.ids().size() == 10);
  cancel = false;
  RetentionReport r = retention.run_once(kNow);
  CHECK(r.exchanges == 10);
  CHECK(r.groups == 3);
}

TEST_CASE("retention: SIGKILL at every point of the protocol leaves a consistent store") {
  // Groups of 16 (the protocol does not depend on the size): 20 old rows are two groups.
  RetentionPolicy policy = age_policy(k30d);
  policy.group_rows = 16;
  for (int point = 1; point <= 5; ++point) {
    CAPTURE(point);
    Store s;
    std::vector<ExchangeRow> young;
    s.db->exec("BEGIN");
    for (int i = 0; i < 20; ++i) s.add(kNow - 40 * kUsPerDay + i * 1000000LL, 10, 20);
    for (int i = 0; i < 3; ++i) young.push_back(s.add(kNow - i * 1000000LL, 10, 20));
    s.db->exec("COMMIT");
    // No connection crosses the fork: the child opens its own, as a restarted server would.
    s.db.reset();
    std::cout.flush();  // else the child's first write to cerr (tied to cout) repeats it
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::setenv(kTestRetentionCrashEnv, std::to_string(point).c_str(), 1);
      auto db = open_index(s.index, true);
      Metrics m;
      Retention(*db, s.blobs, m, policy).run_once(kNow);
      ::_exit(3);  // the hook did not fire
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
    if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGKILL);
    s.db = open_index(s.index, true);
    const size_t rows = s.ids().size(), pending = s.pending().size();
    if (point == 1) {
      CHECK(rows == 23);  // rolled back
      CHECK(pending == 0);
    } else {
      CHECK(rows == 23 - 16);  // the first group committed
      CHECK(pending == 2 * 16);
    }
    // Where each point is: no unlink yet (1, 2), the first one (3), all of them (4, 5).
    const size_t want_files[] = {0, 2 * 23, 2 * 23, 2 * 23 - 1, 2 * 7, 2 * 7};
    CHECK(s.files().size() == want_files[point]);
    s.check_consistent();
    // The restart: finish what is pending, then the orphan scan finds nothing; a pass completes.
    finish_pending_deletions(*s.db, s.blobs);
    CHECK(s.pending().empty());
    IndexWriter writer(*s.db);
    CHECK(recover(writer, s.blobs).orphans == 0);
    s.run(policy);
    CHECK(s.ids() == ids_of({young.rbegin(), young.rend()}));
    CHECK(s.files().size() == 6);
    CHECK(s.pending().empty());
    s.check_consistent();
  }
}

TEST_CASE("retention: a writer on another connection is never held up for long") {
  Store s;
  s.db->exec("BEGIN");
  // Files are not written: creating thousands is slow on some disks, and the lock is the point.
  for (int i = 0; i < 2560; ++i) {
    s.add(kNow - 40 * kUsPerDay + i * 1000LL, 10, 20, "complete", /*write_files=*/false);
  }
  s.db->exec("COMMIT");
  // Ingest's pattern: BEGIN IMMEDIATE with busy_timeout 5000 on its own connection.
  std::atomic<bool> done{false};
  std::atomic<int> commits{0}, failures{0};
  std::atomic<int64_t> worst_us{0};
  std::thread writer([&] {
    auto db = open_index(s.index, true);
    int n = 0;
    while (!done) {
      const auto t0 = std::chrono::steady_clock::now();
      try {
        db->exec("BEGIN IMMEDIATE");
        db->exec("INSERT INTO applied_batches VALUES ('w', " + std::to_string(n++) + ", 'x')");
        db->exec("COMMIT");
        ++commits;
      } catch (const std::exception&) {
        ++failures;
        try {
          db->exec("ROLLBACK");
        } catch (...) {
        }
      }
      int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::steady_clock::now() - t0)
                       .count();
      if (us > worst_us) worst_us = us;
    }
  });
  // Retention's own connection, as the thread has. The pass starts once the writer commits
  // (under ASan a whole pass can end before a new thread has opened its connection).
  auto db = open_index(s.index, true);
  Retention retention(*db, s.blobs, s.metrics, age_policy(k30d));
  CHECK(await([&] { return commits > 0 || failures > 0; }));
  RetentionReport r = retention.run_once(kNow);
  done = true;
  writer.join();
  CHECK_MESSAGE(!r.error, r.error.value_or(""));
  CHECK(r.exchanges == 2560);
  CHECK(r.groups == 10);
  CHECK(failures == 0);
  MESSAGE("2560 rows in 10 groups; a concurrent writer committed "
          << commits.load() << " times, its longest wait " << worst_us.load() / 1000.0 << " ms");
  CHECK(worst_us < 2000000);
}

TEST_CASE("retention: the thread passes at start and every interval, and stops at once") {
  Store s;
  ExchangeRow old = s.add(kNow - 400 * kUsPerDay, 100, 100);
  s.add(lp::now_us(), 100, 100);
  SUBCASE("a short interval: several passes") {
    RetentionThread t(s.index, s.blobs, s.metrics, age_policy(k30d), 10ms);
    REQUIRE(t.start());
    CHECK(await([&] { return s.metrics.retention_runs >= 3; }));
    t.stop();
    CHECK(s.metrics.retention_failures == 0);
    CHECK(s.metrics.retention_exchanges_deleted == 1);
    CHECK(s.ids().size() == 1);
    CHECK_FALSE(s.exists(old.request_file));
  }
  SUBCASE("a long interval: one pass at start, and stop() does not wait for the next") {
    RetentionThread t(s.index, s.blobs, s.metrics, age_policy(k30d), std::chrono::hours(1));
    REQUIRE(t.start());
    CHECK(await([&] { return s.metrics.retention_runs >= 1; }));
    const auto t0 = std::chrono::steady_clock::now();
    t.stop();
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
    CHECK(s.metrics.retention_runs == 1);
    CHECK(s.metrics.retention_exchanges_deleted == 1);
  }
}

TEST_CASE("retention: the thread does nothing without a policy, and counts failures") {
  Store s;
  {
    RetentionThread t(s.index, s.blobs, s.metrics, RetentionPolicy{}, 1ms);
    CHECK_FALSE(t.start());
    t.stop();
    CHECK(s.metrics.retention_runs == 0);
  }
  {
    // An index that cannot be opened: counted, and retried at every interval.
    RetentionThread t(s.dir.path() + "/missing/dir/index.sqlite", s.blobs, s.metrics,
                      age_policy(k30d), 5ms);
    REQUIRE(t.start());
    CHECK(await([&] { return s.metrics.retention_failures >= 2; }));
    t.stop();
    CHECK(s.metrics.retention_runs == s.metrics.retention_failures);
  }
  {
    // The interval test hook, when no interval is given.
    ::setenv(kTestRetentionIntervalEnv, "250", 1);
    RetentionThread hooked(s.index, s.blobs, s.metrics, age_policy(k30d));
    ::unsetenv(kTestRetentionIntervalEnv);
    CHECK(hooked.interval() == 250ms);
    RetentionThread plain(s.index, s.blobs, s.metrics, age_policy(k30d));
    CHECK(plain.interval() == 60s);
  }
}
