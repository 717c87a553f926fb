// Startup recovery: the log server may have stopped in the middle of exchanges, or between
// writing a batch's bytes and committing it. Every exchange still `in_progress` is marked
// `truncated` ("log server restarted before the exchange ended"), and its files are cut back
// to the acknowledged sizes. A later batch for such an exchange (the proxy re-sends what was
// not acknowledged) still applies, and its end frame sets the final outcome. Until that end
// arrives such a row can be appended to, so later recoveries cut its files back too.
//
// Orphans: a batch that created a file (a begin, a response head) and stopped before COMMIT
// leaves a file no row names. Such a file holds only bytes that were never acknowledged, so the
// proxy re-sends them; it is moved to {data_dir}/orphaned/{day}/ (not deleted: if the index
// itself was lost or replaced, every file looks orphaned, and deleting would destroy the archive)
// and counted, so nothing is left in the store that the index does not describe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "log-server/blob_store.h"
#include "log-server/index_writer.h"

namespace lp::logsrv {

inline constexpr const char* kRestartedError = "log server restarted before the exchange ended";

struct RecoveryReport {
  size_t marked = 0;          // rows in_progress -> truncated
  size_t trimmed = 0;         // files cut back to their acknowledged size
  size_t missing = 0;         // files the index names that do not exist
  size_t short_files = 0;     // files shorter than their acknowledged size
  size_t orphans = 0;         // exchange files no row names, moved to kQuarantineDir
  uint64_t orphan_bytes = 0;  // their bytes
};

// The in-progress rows in one transaction, then the orphan scan (every day directory, one
// index range query each). Throws SqliteError or DiskError.
RecoveryReport recover(IndexWriter& writer, BlobStore& store);

}  // namespace lp::logsrv
