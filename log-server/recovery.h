// Startup recovery: the log server may have stopped in the middle of exchanges, or between
// writing a batch's bytes and committing it. Every exchange still `in_progress` is marked
// `truncated` ("log server restarted before the exchange ended"), and its files are cut back
// to the acknowledged sizes. A later batch for such an exchange (the proxy re-sends what was
// not acknowledged) still applies, and its end frame sets the final outcome.
#pragma once

#include <cstddef>

#include "log-server/blob_store.h"
#include "log-server/index_writer.h"

namespace lp::logsrv {

inline constexpr const char* kRestartedError = "log server restarted before the exchange ended";

struct RecoveryReport {
  size_t marked = 0;       // rows in_progress -> truncated
  size_t trimmed = 0;      // files cut back to their acknowledged size
  size_t missing = 0;      // files the index names that do not exist
  size_t short_files = 0;  // files shorter than their acknowledged size
};

// Runs in one transaction; throws SqliteError or DiskError.
RecoveryReport recover(IndexWriter& writer, BlobStore& store);

}  // namespace lp::logsrv
