// The SQLite index: one row per exchange in `exchanges`, one per applied batch in
// `applied_batches`. Opening applies the pragmas (WAL, synchronous=NORMAL, busy_timeout) and,
// for the writer, creates the schema. The files are the data; a row records which files hold
// an exchange and how many of their bytes are acknowledged (request_file_size, ...).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "log-server/sqlite.h"

namespace lp::logsrv {

inline constexpr const char* kInProgress = "in_progress";

struct ExchangeRow {
  std::string id;
  std::string short_id;
  std::string started_at;  // RFC 3339, µs, UTC
  int64_t started_us = 0;
  std::string route;
  std::string method;
  std::string proxy_path;
  std::string destination;
  std::string client_ip;
  std::optional<std::string> replay_of;
  std::optional<int64_t> status;
  std::string outcome = kInProgress;
  std::optional<std::string> error;
  int64_t request_bytes = 0;  // body bytes
  int64_t response_bytes = 0;
  std::optional<int64_t> total_us;
  std::optional<int64_t> request_forwarded_us;
  std::optional<int64_t> upstream_headers_us;
  std::optional<int64_t> first_byte_us;
  // The end frame's whole "timings" object as JSON (the fields above and the proxy's
  // overhead figures: proxy_overhead_us, upstream_connect_us, response_chunk*), shown as is.
  std::optional<std::string> timings_json;
  std::optional<std::string> request_content_type;
  std::optional<std::string> response_content_type;
  std::optional<std::string> response_content_encoding;
  std::string request_file;                  // relative to data_dir
  std::optional<std::string> response_file;  // set when the response head arrives
  int64_t request_file_size = 0;             // acknowledged bytes (head + body)
  int64_t response_file_size = 0;
  int64_t request_head_size = 0;  // the head's share of the file
  int64_t response_head_size = 0;
  std::string proxy_id;
  std::string ingested_at;
  // Derived by the deriver from the files (never by ingest), so always re-derivable:
  // NULL until the exchange ended and was derived. `llm_json` is the whole `llm` object; the
  // columns beside it are what /requests filters and /stats aggregates.
  std::optional<int64_t> derived_version;
  std::optional<std::string> provider;
  std::optional<std::string> model;
  std::optional<int64_t> input_tokens;
  std::optional<int64_t> output_tokens;
  std::optional<int64_t> cached_input_tokens;
  std::optional<double> cost;
  std::optional<int64_t> ttft_us;
  bool llm_error = false;
  std::optional<std::string> llm_json;
};

// The version of the derivation code: rows derived by an older one are derived again.
inline constexpr int64_t kDerivedVersion = 1;

// "id, short_id, ..." in ExchangeRow order, for SELECTs read with read_exchange_row().
extern const char* const kExchangeColumns;
ExchangeRow read_exchange_row(const Statement& s);

// Opens the index at `path`. The writer creates the file and schema; readers expect both.
std::unique_ptr<Database> open_index(const std::string& path, bool writer);

}  // namespace lp::logsrv
