// Applying one capture batch (POST /ingest) to the files and the index, atomically: either
// every frame of the batch is in the index and its bytes are synced to disk, or the index is
// unchanged and whatever was written is cut off again before the next attempt.
//
// Order for one batch: duplicate check on (proxy_id, seq); BEGIN; frames in order (files are
// truncated to their acknowledged size on first use, then appended to); rows written;
// applied_batches row; fdatasync files (and fsync new directory entries); COMMIT. Only then
// is the batch acknowledged. Batches are applied one at a time (a mutex). A batch sent with
// an `after` seq (wire::kAfterHeader) first waits, without holding the mutex, until that batch
// of the same proxy is applied: a proxy keeps several batches in flight on several
// connections, and they arrive in any order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/capture_wire.h"
#include "log-server/blob_store.h"
#include "log-server/index_writer.h"
#include "log-server/metrics.h"

namespace lp::logsrv {

struct IngestResult {
  enum class Status {
    kApplied,
    kDuplicate,    // (proxy_id, seq) was applied before: nothing done
    kOutOfOrder,   // its `after` batch was not applied within the order wait: nothing done
    kDiskFull,     // ENOSPC/EDQUOT: rolled back (507)
    kUnavailable,  // another file or database error: rolled back (503)
  };
  Status status = Status::kApplied;
  size_t frames = 0;   // frames applied
  size_t skipped = 0;  // frames skipped (unknown exchange, out of order)
  std::string error;   // for failures: a message fit for the log (may name paths)
};

class Ingestor {
 public:
  // Told, after each COMMIT, the ids of the exchanges that batch left ended. Called on the
  // ingesting thread with the ingest mutex held: it must only hand the ids off (a bounded
  // queue), never block.
  using EndedListener = std::function<void(const std::vector<std::string>& ids)>;
  // Told, after each COMMIT (and before the ended listener), the rows of the exchanges whose
  // begin or end frame that batch applied, as committed: at most one row per exchange per
  // batch (one begun and ended in the same batch appears once, ended). Same thread and mutex
  // as the ended listener: it must not block (the live feed only queues them).
  using RowsListener = std::function<void(const std::vector<ExchangeRow>& rows)>;

  // How long a batch waits for the batch it must follow before it is answered kOutOfOrder:
  // well under the proxy's 10 s read timeout, long enough for a large batch to be applied.
  static constexpr std::chrono::milliseconds kDefaultOrderWait{5000};

  Ingestor(Database& db, const BlobStore& store, Metrics& metrics,
           std::chrono::milliseconds order_wait = kDefaultOrderWait)
      : writer_(db), store_(store), metrics_(metrics), order_wait_(order_wait) {}

  // Set before the first apply().
  void set_ended_listener(EndedListener listener) { ended_listener_ = std::move(listener); }
  void set_rows_listener(RowsListener listener) { rows_listener_ = std::move(listener); }

  // `batch` from decode_batch_views (the /ingest path: its views must still point into the
  // body) or from decode_batch (its frames are turned into views first). With `after`, the
  // batch is applied only once (batch.proxy_id, *after) is (waiting for it up to the order
  // wait). Called from any number of threads.
  IngestResult apply(const wire::DecodedBatch& batch, std::optional<uint64_t> after = std::nullopt);

  // For recovery at startup, before any batch is applied.
  IndexWriter& writer() { return writer_; }

 private:
  IndexWriter writer_;
  const BlobStore& store_;
  Metrics& metrics_;
  EndedListener ended_listener_;
  RowsListener rows_listener_;
  const std::chrono::milliseconds order_wait_;
  std::mutex mu_;
  std::condition_variable applied_cv_;  // notified after each COMMIT
};

}  // namespace lp::logsrv
