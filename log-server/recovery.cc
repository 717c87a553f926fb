#include "log-server/recovery.h"

#include <unordered_set>

#include "common/time_format.h"

namespace lp::logsrv {

namespace {

constexpr int64_t kUsPerDay = 86400LL * 1000000;

void trim(BlobStore& store, const std::string& file, int64_t size, RecoveryReport& report) {
  switch (store.trim_to(file, size)) {
    case BlobStore::Trim::kOk:
      break;
    case BlobStore::Trim::kTrimmed:
      ++report.trimmed;
      break;
    case BlobStore::Trim::kMissing:
      ++report.missing;
      break;
    case BlobStore::Trim::kShort:
      ++report.short_files;
      break;
  }
}

void trim_files(BlobStore& store, const ExchangeRow& row, RecoveryReport& report) {
  trim(store, row.request_file, row.request_file_size, report);
  if (row.response_file) trim(store, *row.response_file, row.response_file_size, report);
}

void mark_in_progress(IndexWriter& writer, BlobStore& store, RecoveryReport& report) {
  // Exchanges an earlier restart marked may have had frames re-sent since, in a batch that
  // this stop cut short: their files get the same cut. (Only exchanges whose end never came
  // can be appended to, so every other row's files are left unread.)
  for (const ExchangeRow& row : writer.truncated_with(kRestartedError)) {
    trim_files(store, row, report);
  }
  std::vector<ExchangeRow> rows = writer.in_progress();
  if (rows.empty()) return;
  writer.begin();
  try {
    for (ExchangeRow& row : rows) {
      trim_files(store, row, report);
      row.outcome = "truncated";
      row.error = kRestartedError;
      writer.update(row);
      ++report.marked;
    }
    writer.commit();
  } catch (...) {
    writer.rollback();
    throw;
  }
}

// Files are named after their exchange's start (UTC), so the rows that may name a file of day
// D are those that started within D: one range scan on exchanges_by_time per day directory.
void quarantine_orphans(IndexWriter& writer, BlobStore& store, RecoveryReport& report) {
  for (const std::string& day : store.day_directories()) {
    std::vector<std::string> files = store.blob_files(day);
    if (files.empty()) continue;
    std::optional<int64_t> start = parse_rfc3339_us(day + "T00:00:00Z");
    if (!start) continue;  // "2025-13-45": not a date, so not a directory we wrote
    std::vector<std::string> named = writer.files_started_between(*start, *start + kUsPerDay);
    std::unordered_set<std::string> known(named.begin(), named.end());
    for (const std::string& file : files) {
      if (known.count(file)) continue;
      report.orphan_bytes += static_cast<uint64_t>(store.quarantine(file));
      ++report.orphans;
    }
  }
}

}  // namespace

RecoveryReport recover(IndexWriter& writer, BlobStore& store) {
  RecoveryReport report;
  mark_in_progress(writer, store, report);
  quarantine_orphans(writer, store, report);
  return report;
}

}  // namespace lp::logsrv
