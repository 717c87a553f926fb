#include "log-server/recovery.h"

namespace lp::logsrv {

RecoveryReport recover(IndexWriter& writer, BlobStore& store) {
  RecoveryReport report;
  std::vector<ExchangeRow> rows = writer.in_progress();
  if (rows.empty()) return report;
  auto trim = [&](const std::string& file, int64_t size) {
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
  };
  writer.begin();
  try {
    for (ExchangeRow& row : rows) {
      trim(row.request_file, row.request_file_size);
      if (row.response_file) trim(*row.response_file, row.response_file_size);
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
  return report;
}

}  // namespace lp::logsrv
