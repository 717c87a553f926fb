// The log server's counters, updated lock-free by ingest and the API, and their rendering in
// the Prometheus text exposition format for GET /metrics. Ingest counters move only after a
// batch commits, so they never count work that was rolled back.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace lp::logsrv {

// Kinds of log_server_ingest_errors_total{kind="..."}.
enum class IngestErrorKind {
  kMalformed,        // batch failed to decode (400)
  kTooLarge,         // batch body over the limit (413)
  kUnknownExchange,  // frame for an exchange whose begin never arrived (frame skipped)
  kInvalidFrame,     // frame out of order or repeating a begin (frame skipped)
  kDiskFull,         // ENOSPC/EDQUOT (507)
  kIo,               // other file errors (503)
  kDatabase,         // SQLite errors (503)
  kCount,
};
const char* ingest_error_name(IngestErrorKind kind);

class Metrics {
 public:
  std::atomic<uint64_t> exchanges_ingested{0};  // begin frames stored
  std::atomic<uint64_t> bytes_ingested{0};      // head and body bytes appended to files
  std::atomic<uint64_t> batches_applied{0};
  std::atomic<uint64_t> groups_committed{0};  // transactions applying batches (group commit)
  std::atomic<uint64_t> batches_duplicate{0};
  std::atomic<uint64_t> batches_waited{0};        // arrived before the batch they follow
  std::atomic<uint64_t> batches_out_of_order{0};  // ... which did not come in time (409)
  std::atomic<uint64_t> frames_skipped{0};
  std::atomic<int64_t> exchanges{0};      // rows in the index (gauge)
  std::atomic<uint64_t> orphan_files{0};  // moved aside by startup recovery (set once)
  // The deriver (LLM fields from the files).
  std::atomic<uint64_t> derived{0};          // exchanges derived (LLM call or not)
  std::atomic<uint64_t> derived_llm{0};      // ... of which recognised LLM calls
  std::atomic<uint64_t> derive_failures{0};  // files unreadable: left pending, retried later
  std::atomic<uint64_t> derive_dropped{0};   // hand-offs dropped by a full queue (swept later)
  std::atomic<uint64_t> derive_bytes{0};     // stored response bytes read by the deriver
  // The /stats hourly rollups (stats_rollup.h), built by the deriver's thread.
  std::atomic<uint64_t> stats_hours_built{0};
  std::atomic<int64_t> stats_hours_pending{0};  // ended hours not rolled up yet (gauge)
  // Retention.
  std::atomic<uint64_t> retention_runs{0};
  std::atomic<uint64_t> retention_failures{0};
  std::atomic<uint64_t> retention_exchanges_deleted{0};
  std::atomic<uint64_t> retention_bytes_deleted{0};  // exchange file bytes removed
  // The live feed (GET /live).
  std::atomic<int64_t> live_subscribers{0};  // open subscriptions, each holding a worker (gauge)
  std::atomic<uint64_t> live_dropped{0};     // subscribers dropped for falling behind

  void count_error(IngestErrorKind kind, uint64_t n = 1) {
    errors_[static_cast<int>(kind)].fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t errors(IngestErrorKind kind) const {
    return errors_[static_cast<int>(kind)].load(std::memory_order_relaxed);
  }

  std::string render() const;

 private:
  std::atomic<uint64_t> errors_[static_cast<int>(IngestErrorKind::kCount)] = {};
};

}  // namespace lp::logsrv
