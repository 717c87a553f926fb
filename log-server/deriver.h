// Deriving the reading side of an exchange from its stored files: the decoded bodies, the
// LLM fields and the assembled answer (DESIGN.md §7). The files stay the truth; whatever is
// derived can be derived again (`log-server reindex`), so a parser bug never loses data.
//
// derive_exchange() is the one way to do it (the Deriver thread, reindex and the API's
// /assembled all call it). Deriver runs it off the ingest path: ingest hands over the ids of
// exchanges that ended (a bounded queue; a full queue drops the hand-off, the row stays
// pending and the next sweep finds it); rows still pending (derived_version NULL, e.g. after
// a restart or an upgrade from an older index) are swept at start and every few seconds.
// The same thread, on the same sweep, builds the /stats hourly rollups of hours that have ended
// (stats_rollup.h), a bounded amount of work at a time.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/http_message.h"
#include "log-server/blob_store.h"
#include "log-server/index_schema.h"
#include "log-server/metrics.h"
#include "log-server/reading/decode.h"
#include "log-server/reading/llm.h"

namespace lp::logsrv {

// The arrival of each stored response body piece: body offset and µs since the exchange
// started, parsed from the row's "OFFSET,T_US;" text. Malformed entries are skipped.
struct ChunkTime {
  int64_t offset = 0;
  int64_t t_us = 0;
};
std::vector<ChunkTime> parse_chunk_times(std::string_view text);

// The row's response_chunks column (not part of ExchangeRow: it can be large).
std::optional<std::string> read_chunk_times(Database& db, const std::string& id);

// Streams the body of a stored message (the bytes after its head, up to the acknowledged
// size) through its Content-Encoding into `sink`, `raw`: without decoding. Result values:
// status kOk, or the decoder's problem; a file that cannot be read is kCorrupt with `error`
// naming it. The caller bounds the output with `max_decoded`.
struct BodyReadResult {
  reading::DecodeStatus status = reading::DecodeStatus::kOk;
  std::string error;
};
BodyReadResult read_stored_body(const BlobStore& store, const std::string& file, int64_t head_size,
                                int64_t file_size, const std::vector<std::string>& codings,
                                uint64_t max_decoded, const reading::BodyDecoder::Sink& sink);

// The head of a stored message (bounded read); nullopt when the file cannot be read.
std::optional<StoredHead> read_stored_head(const BlobStore& store,
                                           const std::optional<std::string>& file,
                                           int64_t head_size);

// The codings of a head's Content-Encoding lines, in order.
std::vector<std::string> content_codings(const StoredHead& head);

struct DeriveOutcome {
  bool ok = true;                         // false: a file could not be read (error says which)
  std::string error;                      // for the log
  std::optional<reading::LlmResult> llm;  // set when the exchange is a recognised LLM call
};

// Reads the exchange's files and derives its LLM fields. `chunk_times` as stored (may be
// empty: then no arrival times). Thread-safe (no shared state); does file I/O.
DeriveOutcome derive_exchange(const ExchangeRow& row, const BlobStore& store,
                              std::string_view chunk_times, uint64_t max_decoded);

// Writes a derivation into the row, unless the row changed since it was read (its outcome or
// file sizes differ): then nothing is written and the row stays pending. Returns whether it
// was written.
bool store_derivation(Database& db, const ExchangeRow& row, const DeriveOutcome& outcome);

class Deriver {
 public:
  static constexpr size_t kQueueLimit = 100000;  // ids waiting; beyond, hand-offs are dropped

  // `store` and `metrics` must outlive this. Opens its own connection to `index_path`.
  Deriver(std::string index_path, const BlobStore& store, Metrics& metrics, uint64_t max_decoded);
  ~Deriver();  // stops
  Deriver(const Deriver&) = delete;
  Deriver& operator=(const Deriver&) = delete;

  // Told, on the deriver thread after each COMMIT, the ids of the recognised LLM calls whose
  // derived fields it stored (their list item changed: the live feed re-announces them). Set
  // before start(); must not block for long (it delays the next derivation, never ingest).
  using DerivedListener = std::function<void(const std::vector<std::string>& ids)>;
  void set_derived_listener(DerivedListener listener) { derived_listener_ = std::move(listener); }

  void start();
  void stop();  // finishes the exchange in hand, then returns
  // Any thread; never blocks beyond a mutex.
  void notify(const std::vector<std::string>& ids);

 private:
  void run();
  DeriveOutcome derive_one(Database& db, const ExchangeRow& row);
  void derive_rows(Database& db, const std::vector<ExchangeRow>& rows);
  std::vector<ExchangeRow> pending(Database& db, size_t limit);
  std::vector<ExchangeRow> rows_for(Database& db, const std::vector<std::string>& ids);
  // Builds rollups for up to kRollupBudget; true when ended hours are still waiting.
  bool build_rollups(Database& db);

  const std::string index_path_;
  const BlobStore& store_;
  Metrics& metrics_;
  const uint64_t max_decoded_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  bool dropped_ = false;  // a hand-off was dropped: sweep soon
  DerivedListener derived_listener_;
  std::thread thread_;
};

}  // namespace lp::logsrv
