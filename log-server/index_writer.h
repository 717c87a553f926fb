// The write side of the index, used by one thread at a time (the one leading ingest, see
// ingest.h): transactions, the batch ledger, exchange rows in and out, and the startup
// recovery queries. Statements are prepared once and reused. Nothing here touches files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "log-server/index_schema.h"

namespace lp::logsrv {

inline constexpr size_t kMaxChunkTimesBytes = 1024 * 1024;

class IndexWriter {
 public:
  explicit IndexWriter(Database& db) : db_(db) {}

  void begin();  // BEGIN IMMEDIATE
  void commit();
  void rollback() noexcept;  // best effort; never throws

  bool batch_applied(const std::string& proxy_id, uint64_t seq);
  void mark_batch_applied(const std::string& proxy_id, uint64_t seq, const std::string& at);

  std::optional<ExchangeRow> find(const std::string& id);
  bool exists(const std::string& id);
  // `chunk_times`: the row's first "OFFSET,T_US;" entries (see append_chunk_times), or "".
  void insert(const ExchangeRow& row, std::string_view chunk_times = {});
  // Writes every column that changes after the begin frame (sizes, outcome, timings, ...) and
  // marks the row for derivation again (its files changed).
  void update(const ExchangeRow& row);
  // Appends "OFFSET,T_US;" entries (response body offset, arrival µs since the exchange
  // started) to the row's chunk times, unless they already hold kMaxChunkTimesBytes.
  void append_chunk_times(const std::string& id, std::string_view entries);

  // Whether another exchange's row names `request_file` (looked up within the millisecond of
  // `started_us`, which the file name encodes, so it is an index range scan).
  bool request_file_taken(const std::string& request_file, int64_t started_us,
                          const std::string& id);

  std::vector<ExchangeRow> in_progress();
  // Rows `truncated` with `error` (an earlier recovery's mark): their end frame never came, so
  // re-sent frames may still append to their files.
  std::vector<ExchangeRow> truncated_with(const std::string& error);
  // The request and response file names of the exchanges that started in [from_us, to_us)
  // (for the orphan scan: one day directory at a time).
  std::vector<std::string> files_started_between(int64_t from_us, int64_t to_us);
  int64_t count();

 private:
  Database& db_;
};

}  // namespace lp::logsrv
