#include "log-server/metrics.h"

namespace lp::logsrv {

const char* ingest_error_name(IngestErrorKind kind) {
  switch (kind) {
    case IngestErrorKind::kMalformed:
      return "malformed";
    case IngestErrorKind::kTooLarge:
      return "too_large";
    case IngestErrorKind::kUnknownExchange:
      return "unknown_exchange";
    case IngestErrorKind::kInvalidFrame:
      return "invalid_frame";
    case IngestErrorKind::kDiskFull:
      return "disk_full";
    case IngestErrorKind::kIo:
      return "io";
    case IngestErrorKind::kDatabase:
      return "database";
    case IngestErrorKind::kCount:
      break;
  }
  return "unknown";
}

std::string Metrics::render() const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    out += std::string("# HELP ") + name + " " + help + "\n";
    out += std::string("# TYPE ") + name + " " + type + "\n";
    out += std::string(name) + " " + std::to_string(value) + "\n";
  };
  auto load = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  metric("log_server_exchanges_ingested_total", "counter",
         "Exchanges whose begin frame was stored.", load(exchanges_ingested));
  metric("log_server_bytes_ingested_total", "counter",
         "Head and body bytes appended to exchange files.", load(bytes_ingested));
  metric("log_server_batches_applied_total", "counter", "Capture batches applied.",
         load(batches_applied));
  metric("log_server_ingest_commits_total", "counter",
         "Transactions that applied capture batches: batches that arrive together share one "
         "(and one sync).",
         load(groups_committed));
  metric("log_server_batches_duplicate_total", "counter",
         "Capture batches received again after being applied (ignored).", load(batches_duplicate));
  metric("log_server_batches_waited_total", "counter",
         "Capture batches that arrived before the batch they follow and waited for it.",
         load(batches_waited));
  metric("log_server_batches_out_of_order_total", "counter",
         "Capture batches refused (409) because the batch they follow was not applied in time.",
         load(batches_out_of_order));
  out +=
      "# HELP log_server_ingest_errors_total Ingest problems by kind (rejected batches and "
      "skipped frames).\n"
      "# TYPE log_server_ingest_errors_total counter\n";
  for (int k = 0; k < static_cast<int>(IngestErrorKind::kCount); ++k) {
    auto kind = static_cast<IngestErrorKind>(k);
    out += std::string("log_server_ingest_errors_total{kind=\"") + ingest_error_name(kind) +
           "\"} " + std::to_string(errors(kind)) + "\n";
  }
  metric("log_server_frames_skipped_total", "counter",
         "Frames skipped: unknown exchange or invalid order.", load(frames_skipped));
  metric("log_server_exchanges", "gauge", "Exchanges in the index.", load(exchanges));
  metric("log_server_recovery_orphan_files_total", "counter",
         "Exchange files no index row named, moved to data_dir/orphaned at startup.",
         load(orphan_files));
  metric("log_server_derived_total", "counter",
         "Exchanges whose LLM fields were derived from their files.", load(derived));
  metric("log_server_derived_llm_total", "counter",
         "Derived exchanges that were recognised LLM calls.", load(derived_llm));
  metric("log_server_derive_failures_total", "counter",
         "Derivations that could not read their files (left pending, retried).",
         load(derive_failures));
  metric("log_server_derive_dropped_total", "counter",
         "Ended exchanges not handed to the deriver at once (queue full; swept later).",
         load(derive_dropped));
  metric("log_server_derive_bytes_total", "counter", "Stored response bytes the deriver read.",
         load(derive_bytes));
  metric("log_server_stats_hours_built_total", "counter",
         "Hours whose /stats rollup was built (again, after a change).", load(stats_hours_built));
  metric("log_server_stats_hours_pending", "gauge",
         "Ended hours whose /stats rollup is missing or stale (answered from rows meanwhile).",
         load(stats_hours_pending));
  metric("log_server_retention_runs_total", "counter", "Retention passes run.",
         load(retention_runs));
  metric("log_server_retention_failures_total", "counter",
         "Retention passes that failed (retried at the next pass).", load(retention_failures));
  metric("log_server_retention_exchanges_deleted_total", "counter",
         "Exchanges deleted by retention (row and files).", load(retention_exchanges_deleted));
  metric("log_server_retention_bytes_deleted_total", "counter",
         "Exchange file bytes deleted by retention.", load(retention_bytes_deleted));
  metric("log_server_live_subscribers", "gauge",
         "Open GET /live subscriptions (each holds an HTTP worker).", load(live_subscribers));
  metric("log_server_live_dropped_total", "counter",
         "GET /live subscribers dropped because their buffer was full (too slow).",
         load(live_dropped));
  return out;
}

}  // namespace lp::logsrv
