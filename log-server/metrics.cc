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
  metric("log_server_batches_duplicate_total", "counter",
         "Capture batches received again after being applied (ignored).", load(batches_duplicate));
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
  return out;
}

}  // namespace lp::logsrv
