// Applying capture batches (POST /ingest) to the files and the index, atomically: either
// every frame of a batch is in the index and its bytes are synced to disk, or the index is
// unchanged and whatever was written is cut off again before the next attempt.
//
// Batches that arrive together are applied together (group commit): one thread at a time
// leads, taking every queued batch that may go now, and applies them in one transaction:
// duplicate check on (proxy_id, seq); BEGIN; per batch, frames in order (files are truncated
// to their acknowledged size on first use, then appended to), rows, applied_batches row; one
// sync of all their files (one syncfs, or fdatasync each when few) and new directory entries;
// COMMIT. Only then are they acknowledged. A failure fails the whole group (each batch is
// re-sent and applied once). A batch sent with an `after` seq (wire::kAfterHeader) goes only
// once that batch of the same proxy is applied, or in the same group behind it: a proxy keeps
// several batches in flight on several connections, and they arrive in any order.
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
  // Told, after each COMMIT, the ids of the exchanges each batch of it left ended. Called by
  // the leading thread, one call at a time, in commit order: it must only hand the ids off (a
  // bounded queue), never block (the batches behind wait for it).
  using EndedListener = std::function<void(const std::vector<std::string>& ids)>;
  // Told, after each COMMIT (and before the ended listener), the rows of the exchanges whose
  // begin or end frame each batch applied, as committed: at most one row per exchange per
  // batch (one begun and ended in the same batch appears once, ended). Called as the ended
  // listener is: it must not block (the live feed only queues them).
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
  // body) or from decode_batch (its frames are turned into views first); it must stay valid
  // until this returns. With `after`, the batch is applied only once (batch.proxy_id, *after)
  // is (waiting for it up to the order wait). Called from any number of threads; returns once
  // the batch's group is committed or failed.
  IngestResult apply(const wire::DecodedBatch& batch, std::optional<uint64_t> after = std::nullopt);

  // The most batches one transaction applies (more that are ready wait for the next).
  static constexpr size_t kMaxGroup = 8;

  // For recovery at startup, before any batch is applied.
  IndexWriter& writer() { return writer_; }

 private:
  IndexWriter writer_;
  const BlobStore& store_;
  Metrics& metrics_;
  EndedListener ended_listener_;
  RowsListener rows_listener_;
  // A batch handed to apply(), queued until a leader decides it.
  struct Request {
    const wire::DecodedBatch* batch;
    std::optional<uint64_t> after;
    std::chrono::steady_clock::time_point deadline;  // for a batch waiting on `after`
    IngestResult result;
    bool done = false;    // result is final (under mu_)
    bool waited = false;  // counted once in batches_waited (leader only)
  };
  // Leads (leading_ set, mu_ held by `lock` on entry and exit, released while applying):
  // applies groups of the queued requests until a pass decides none and none arrived; then
  // wakes the waiters whose order wait is over, so that they answer.
  void lead(std::unique_lock<std::mutex>& lock);
  // One pass of the leader over `queued` (a snapshot, arrival order), without mu_: decides
  // duplicates, applies those that may go now as one group, leaves the others undecided
  // (nullopt). Only the leader touches writer_.
  std::vector<std::optional<IngestResult>> apply_group(const std::vector<Request*>& queued);
  // Applies `members` (in order) in one transaction; fills `results`. Throws nothing.
  void commit_group(const std::vector<Request*>& members, std::vector<IngestResult>* results);

  const std::chrono::milliseconds order_wait_;
  std::mutex mu_;
  std::condition_variable done_cv_;  // notified when a pass decided requests (or see lead())
  std::vector<Request*> queue_;      // under mu_: requests not decided yet, arrival order
  bool leading_ = false;             // under mu_: a thread is leading
};

}  // namespace lp::logsrv
