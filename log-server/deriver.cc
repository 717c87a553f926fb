#include "log-server/deriver.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "common/thread_name.h"
#include "log-server/reading/sse.h"
#include "log-server/stats_rollup.h"

namespace lp::logsrv {

namespace {

constexpr size_t kReadPiece = 64 * 1024;
constexpr size_t kMaxHeadRead = 1024 * 1024;
constexpr size_t kSweepBatch = 256;
constexpr auto kSweepInterval = std::chrono::seconds(5);
// Rollup building per pass, then a pause as long before the next while a backlog lasts (a
// freshly upgraded index): half a core at most, and the write lock is free between hours.
constexpr auto kRollupBudget = std::chrono::milliseconds(200);
constexpr auto kRollupPause = std::chrono::milliseconds(200);

// Calls `fn(piece, offset)` for the bytes [from, to) of a stored file, in pieces of at most
// kReadPiece. False with *error set when the file cannot be read to `to`.
template <class Fn>
bool read_range(const BlobStore& store, const std::string& file, int64_t from, int64_t to, Fn&& fn,
                std::string* error) {
  int fd = store.open_read(file);
  if (fd < 0) {
    *error = "cannot open " + file + ": " + std::strerror(errno);
    return false;
  }
  std::string buf(kReadPiece, '\0');
  bool ok = true;
  for (int64_t off = from; off < to;) {
    size_t want = static_cast<size_t>(std::min<int64_t>(to - off, kReadPiece));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(off));
    if (n <= 0) {
      *error = file + " is shorter than its acknowledged size";
      ok = false;
      break;
    }
    if (!fn(std::string_view(buf.data(), static_cast<size_t>(n)), off)) break;
    off += n;
  }
  ::close(fd);
  return ok;
}

// The arrival of the body byte at `offset`: the last piece that starts at or before it.
class ArrivalClock {
 public:
  explicit ArrivalClock(std::vector<ChunkTime> chunks) : chunks_(std::move(chunks)) {}

  std::optional<int64_t> at(int64_t offset) {
    if (chunks_.empty() || chunks_.front().offset > offset) return std::nullopt;
    while (i_ + 1 < chunks_.size() && chunks_[i_ + 1].offset <= offset) ++i_;
    return chunks_[i_].t_us;
  }
  // Bytes from `offset` to the start of the next piece (or `max`).
  int64_t run_length(int64_t offset, int64_t max) const {
    for (size_t j = i_; j < chunks_.size(); ++j) {
      if (chunks_[j].offset > offset) return std::min(max, chunks_[j].offset - offset);
    }
    return max;
  }
  std::optional<int64_t> last() const {
    if (chunks_.empty()) return std::nullopt;
    return chunks_.back().t_us;
  }

 private:
  std::vector<ChunkTime> chunks_;
  size_t i_ = 0;
};

std::string method_of(const ExchangeRow& row, const StoredHead& head) {
  if (!row.method.empty()) return row.method;
  return head.start_line.substr(0, head.start_line.find(' '));
}

}  // namespace

std::vector<ChunkTime> parse_chunk_times(std::string_view text) {
  std::vector<ChunkTime> out;
  while (!text.empty()) {
    size_t semi = text.find(';');
    std::string_view entry = text.substr(0, semi);
    text.remove_prefix(semi == std::string_view::npos ? text.size() : semi + 1);
    size_t comma = entry.find(',');
    if (comma == std::string_view::npos) continue;
    ChunkTime c;
    auto a = std::from_chars(entry.data(), entry.data() + comma, c.offset);
    auto b = std::from_chars(entry.data() + comma + 1, entry.data() + entry.size(), c.t_us);
    if (a.ec != std::errc() || b.ec != std::errc() || a.ptr != entry.data() + comma ||
        b.ptr != entry.data() + entry.size()) {
      continue;
    }
    // Offsets only grow; an entry that goes back is not ours.
    if (!out.empty() && c.offset < out.back().offset) continue;
    out.push_back(c);
  }
  return out;
}

std::optional<std::string> read_chunk_times(Database& db, const std::string& id) {
  Statement& s = db.cached("SELECT response_chunks FROM exchanges WHERE id = ?1");
  StatementScope scope(s);
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return s.opt_text(0);
}

std::optional<StoredHead> read_stored_head(const BlobStore& store,
                                           const std::optional<std::string>& file,
                                           int64_t head_size) {
  if (!file || head_size <= 0) return std::nullopt;
  std::string head;
  std::string error;
  int64_t to = std::min<int64_t>(head_size, static_cast<int64_t>(kMaxHeadRead));
  bool ok = read_range(
      store, *file, 0, to,
      [&](std::string_view piece, int64_t) {
        head.append(piece);
        return true;
      },
      &error);
  if (!ok) return std::nullopt;
  return parse_stored_head(head);
}

std::vector<std::string> content_codings(const StoredHead& head) {
  std::string joined;
  for (const auto& [name, value] : head.headers) {
    if (iequals(name, "content-encoding")) {
      if (!joined.empty()) joined += ", ";
      joined += value;
    }
  }
  return reading::parse_content_codings(joined);
}

BodyReadResult read_stored_body(const BlobStore& store, const std::string& file, int64_t head_size,
                                int64_t file_size, const std::vector<std::string>& codings,
                                uint64_t max_decoded, const reading::BodyDecoder::Sink& sink) {
  BodyReadResult result;
  reading::BodyDecoder decoder(codings, max_decoded);
  std::string error;
  bool read_ok = read_range(
      store, file, head_size, file_size,
      [&](std::string_view piece, int64_t) { return decoder.feed(piece, sink); }, &error);
  if (!read_ok) {
    result.status = reading::DecodeStatus::kCorrupt;
    result.error = error;
    return result;
  }
  if (decoder.status() == reading::DecodeStatus::kOk) decoder.finish(sink);
  result.status = decoder.status();
  result.error = decoder.error();
  return result;
}

DeriveOutcome derive_exchange(const ExchangeRow& row, const BlobStore& store,
                              std::string_view chunk_times, uint64_t max_decoded) {
  DeriveOutcome out;
  std::optional<StoredHead> request_head =
      read_stored_head(store, row.request_file, row.request_head_size);
  if (!request_head) {
    out.ok = false;
    out.error = "cannot read the request head of " + row.id;
    return out;
  }
  const std::string method = method_of(row, *request_head);
  // The request body is read whole for its JSON: only when it can be an LLM call (an upload of
  // any size to another path costs nothing here).
  std::string request_body;
  if (reading::may_be_llm_call(method, row.destination)) {
    const std::vector<std::string> codings = content_codings(*request_head);
    if (codings.empty() && row.request_file_size > row.request_head_size) {
      request_body.reserve(static_cast<size_t>(std::min<int64_t>(
          row.request_file_size - row.request_head_size, static_cast<int64_t>(max_decoded))));
    }
    BodyReadResult request_read =
        read_stored_body(store, row.request_file, row.request_head_size, row.request_file_size,
                         codings, max_decoded, [&](std::string_view piece) {
                           request_body.append(piece);
                           return true;
                         });
    if (request_read.status != reading::DecodeStatus::kOk) request_body = std::string();
  }

  std::optional<StoredHead> response_head =
      read_stored_head(store, row.response_file, row.response_head_size);
  reading::LlmExchange x;
  x.method = method;
  x.destination = row.destination;
  x.route = row.route;
  x.request_headers = &request_head->headers;
  x.request_body = request_body;
  if (row.status) x.status = static_cast<int>(*row.status);
  x.response_headers = response_head ? &response_head->headers : nullptr;
  std::unique_ptr<reading::Derivation> d = reading::start_derivation(x);
  if (!d) return out;
  request_body = std::string();  // the Derivation copied what it keeps

  bool cut = row.outcome != "complete";
  if (response_head && row.response_file) {
    const bool sse = is_event_stream(response_head->headers);
    ArrivalClock clock(parse_chunk_times(chunk_times));
    reading::BodyDecoder decoder(content_codings(*response_head), max_decoded);
    std::string error;
    bool read_ok = false;
    if (sse) {
      reading::SseParser parser;
      std::optional<int64_t> now;
      auto to_parser = [&](std::string_view decoded) {
        parser.feed(decoded, [&](const reading::SseEvent& e) { d->on_event(e, now); });
        return true;
      };
      read_ok = read_range(
          store, *row.response_file, row.response_head_size, row.response_file_size,
          [&](std::string_view piece, int64_t file_offset) {
            // Pieces are fed split at the stored arrival boundaries, so every event is
            // stamped with the arrival of the bytes that completed it.
            int64_t body_offset = file_offset - row.response_head_size;
            while (!piece.empty()) {
              now = clock.at(body_offset);
              auto take = static_cast<size_t>(
                  clock.run_length(body_offset, static_cast<int64_t>(piece.size())));
              if (take == 0) take = piece.size();
              if (!decoder.feed(piece.substr(0, take), to_parser)) return false;
              piece.remove_prefix(take);
              body_offset += static_cast<int64_t>(take);
            }
            return true;
          },
          &error);
      if (read_ok && decoder.status() == reading::DecodeStatus::kOk) decoder.finish(to_parser);
      if (parser.finish()) cut = true;
    } else {
      std::string body;
      read_ok = read_range(
          store, *row.response_file, row.response_head_size, row.response_file_size,
          [&](std::string_view piece, int64_t) {
            return decoder.feed(piece, [&](std::string_view decoded) {
              body.append(decoded);
              return true;
            });
          },
          &error);
      if (read_ok && decoder.status() == reading::DecodeStatus::kOk) {
        decoder.finish([&](std::string_view decoded) {
          body.append(decoded);
          return true;
        });
      }
      if (decoder.status() == reading::DecodeStatus::kOk) d->on_body(body, clock.last());
    }
    if (!read_ok && decoder.status() == reading::DecodeStatus::kOk) {
      out.ok = false;
      out.error = error;
      return out;
    }
    if (decoder.status() != reading::DecodeStatus::kOk) cut = true;
  }
  out.llm = d->finish(cut);
  return out;
}

bool store_derivation(Database& db, const ExchangeRow& row, const DeriveOutcome& outcome) {
  Statement& s = db.cached(
      "UPDATE exchanges SET derived_version = ?2, provider = ?3, model = ?4, input_tokens = ?5, "
      "output_tokens = ?6, cached_input_tokens = ?7, cost = ?8, ttft_us = ?9, llm_error = ?10, "
      "llm_json = ?11 WHERE id = ?1 AND outcome = ?12 AND request_file_size = ?13 AND "
      "response_file_size = ?14");
  StatementScope scope(s);
  s.bind(1, row.id).bind(2, kDerivedVersion);
  if (outcome.llm) {
    const reading::LlmFields& f = outcome.llm->fields;
    // The model the request asked for; the response's when the request named none.
    std::optional<std::string> model = f.model ? f.model : f.response_model;
    std::optional<int64_t> ttft;
    if (f.ttft_ms) ttft = static_cast<int64_t>(*f.ttft_ms * 1000.0 + 0.5);
    s.bind(3, f.provider).bind(4, model).bind(5, f.input_tokens).bind(6, f.output_tokens);
    s.bind(7, f.cached_input_tokens).bind(8, f.cost).bind(9, ttft);
    s.bind(10, f.error ? 1 : 0);
    s.bind(11, reading::llm_fields_json(f).dump(-1, ' ', false,
                                                nlohmann::ordered_json::error_handler_t::replace));
  } else {
    for (int c = 3; c <= 9; ++c) s.bind(c, std::nullopt);
    s.bind(10, 0).bind(11, std::nullopt);
  }
  s.bind(12, row.outcome).bind(13, row.request_file_size).bind(14, row.response_file_size);
  s.step();
  return db.changes() > 0;
}

Deriver::Deriver(std::string index_path, const BlobStore& store, Metrics& metrics,
                 uint64_t max_decoded)
    : index_path_(std::move(index_path)),
      store_(store),
      metrics_(metrics),
      max_decoded_(max_decoded) {}

Deriver::~Deriver() {
  stop();
}

void Deriver::start() {
  thread_ = std::thread([this] {
    name_this_thread("ls-deriver");
    run();
  });
}

void Deriver::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Deriver::notify(const std::vector<std::string>& ids) {
  {
    std::lock_guard lock(mu_);
    for (const std::string& id : ids) {
      if (queue_.size() >= kQueueLimit) {
        dropped_ = true;
        metrics_.derive_dropped.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      queue_.push_back(id);
    }
  }
  cv_.notify_one();
}

DeriveOutcome Deriver::derive_one(Database& db, const ExchangeRow& row) {
  std::string chunk_times = read_chunk_times(db, row.id).value_or("");
  DeriveOutcome outcome = derive_exchange(row, store_, chunk_times, max_decoded_);
  if (outcome.llm) outcome.llm->assembled = nullptr;  // served on demand, never stored
  metrics_.derive_bytes.fetch_add(static_cast<uint64_t>(row.response_file_size),
                                  std::memory_order_relaxed);
  return outcome;
}

// Derives outside any transaction (reading files takes time, and ingest must never wait on
// it), then writes the results in one short one.
void Deriver::derive_rows(Database& db, const std::vector<ExchangeRow>& rows) {
  std::vector<DeriveOutcome> outcomes;
  outcomes.reserve(rows.size());
  for (const ExchangeRow& row : rows) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    outcomes.push_back(derive_one(db, row));
  }
  std::vector<std::string> stored;
  db.exec("BEGIN IMMEDIATE");
  try {
    for (size_t i = 0; i < rows.size(); ++i) {
      // Stored only while the row is unchanged: a row retention deleted meanwhile (its files
      // gone too) is neither written nor reported as a failure.
      if (store_derivation(db, rows[i], outcomes[i])) {
        if (!outcomes[i].ok) {
          // Marked derived all the same (without LLM fields): a missing file does not come
          // back by retrying, and `reindex` tries again on demand.
          metrics_.derive_failures.fetch_add(1, std::memory_order_relaxed);
          std::fprintf(stderr, "log-server: deriving %s: %s\n", rows[i].id.c_str(),
                       outcomes[i].error.c_str());
        }
        metrics_.derived.fetch_add(1, std::memory_order_relaxed);
        if (outcomes[i].llm) metrics_.derived_llm.fetch_add(1, std::memory_order_relaxed);
        // Only an LLM call's summary changes (model, tokens, TTFT): no event for the rest.
        if (derived_listener_ && outcomes[i].llm) stored.push_back(rows[i].id);
      }
    }
    db.exec("COMMIT");
  } catch (...) {
    db.rollback();
    throw;
  }
  if (!stored.empty()) derived_listener_(stored);
}

std::vector<ExchangeRow> Deriver::pending(Database& db, size_t limit) {
  std::vector<ExchangeRow> rows;
  Statement& s = db.cached(std::string("SELECT ") + kExchangeColumns +
                           " FROM exchanges WHERE derived_version IS NULL AND outcome != "
                           "'in_progress' ORDER BY started_us LIMIT ?1");
  StatementScope scope(s);
  s.bind(1, static_cast<int64_t>(limit));
  while (s.step()) rows.push_back(read_exchange_row(s));
  return rows;
}

std::vector<ExchangeRow> Deriver::rows_for(Database& db, const std::vector<std::string>& ids) {
  std::vector<ExchangeRow> rows;
  Statement& s =
      db.cached(std::string("SELECT ") + kExchangeColumns + " FROM exchanges WHERE id = ?1");
  for (const std::string& id : ids) {
    StatementScope scope(s);
    s.bind(1, id);
    if (!s.step()) continue;
    ExchangeRow row = read_exchange_row(s);
    if (row.outcome != kInProgress && !row.derived_version) rows.push_back(std::move(row));
  }
  return rows;
}

bool Deriver::build_rollups(Database& db) {
  auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  RollupBuildResult r = build_stats_rollups(db, static_cast<int64_t>(now_us),
                                            RollupBuildLimits{.budget = kRollupBudget});
  metrics_.stats_hours_built.fetch_add(r.built, std::memory_order_relaxed);
  metrics_.stats_hours_pending.store(static_cast<int64_t>(r.pending), std::memory_order_relaxed);
  return r.pending > 0;
}

void Deriver::run() {
  std::unique_ptr<Database> db;
  try {
    db = open_index(index_path_, /*writer=*/true);
    // Rows derived by an older version of this code are derived again.
    Statement& s = db->cached(
        "UPDATE exchanges SET derived_version = NULL WHERE derived_version IS NOT NULL AND "
        "derived_version < ?1");
    StatementScope scope(s);
    s.bind(1, kDerivedVersion);
    s.step();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "log-server: deriver cannot open the index: %s\n", e.what());
    return;
  }
  auto next_sweep = std::chrono::steady_clock::now();
  bool backlog = true;  // rows may be pending from before this start
  // When to build rollups next: after each sweep, and soon again while ended hours wait.
  constexpr auto kNever = std::chrono::steady_clock::time_point::max();
  auto next_rollup = kNever;
  for (;;) {
    std::vector<std::string> ids;
    {
      std::unique_lock lock(mu_);
      auto wake = backlog ? std::chrono::steady_clock::now() : next_sweep;
      wake = std::min(wake, next_rollup);
      cv_.wait_until(lock, wake, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      while (!queue_.empty() && ids.size() < kSweepBatch) {
        ids.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (dropped_) {
        backlog = true;
        dropped_ = false;
      }
    }
    try {
      if (!ids.empty()) derive_rows(*db, rows_for(*db, ids));
      if (backlog || std::chrono::steady_clock::now() >= next_sweep) {
        std::vector<ExchangeRow> rows = pending(*db, kSweepBatch);
        backlog = rows.size() == kSweepBatch;
        derive_rows(*db, rows);
        next_sweep = std::chrono::steady_clock::now() + kSweepInterval;
        next_rollup = std::chrono::steady_clock::now();
      }
      if (std::chrono::steady_clock::now() >= next_rollup) {
        next_rollup = kNever;
        if (build_rollups(*db)) next_rollup = std::chrono::steady_clock::now() + kRollupPause;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "log-server: deriver: %s (retrying)\n", e.what());
      backlog = false;
      next_rollup = kNever;
      next_sweep = std::chrono::steady_clock::now() + kSweepInterval;
    }
  }
}

}  // namespace lp::logsrv
