#include "log-server/ingest.h"

#include <sqlite3.h>

#include <unordered_map>
#include <unordered_set>

#include "common/http_message.h"
#include "common/time_format.h"
#include "log-server/list_query.h"

namespace lp::logsrv {

namespace {

using wire::FrameType;
using json = nlohmann::json;

std::string str(const json& meta, const char* key) {
  auto it = meta.find(key);
  return it != meta.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<std::string> opt_str(const json& meta, const char* key) {
  auto it = meta.find(key);
  if (it == meta.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::optional<int64_t> opt_int(const json& meta, const char* key) {
  auto it = meta.find(key);
  if (it == meta.end()) return std::nullopt;
  if (it->is_number_unsigned()) {
    uint64_t v = it->get<uint64_t>();
    return v > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(v);
  }
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float()) return static_cast<int64_t>(it->get<double>());
  return std::nullopt;
}

// The exchange state one batch works on: loaded on first reference, written back once.
struct Entry {
  ExchangeRow row;
  bool is_new = false;  // begun in this batch: INSERT rather than UPDATE
  bool dirty = false;
  bool announced = false;   // its begin or end frame is in this batch (for the live feed)
  std::string chunk_times;  // "OFFSET,T_US;" of this batch's response body frames
};

class BatchApplier {
 public:
  BatchApplier(IndexWriter& writer, const BlobStore& store, const std::string& proxy_id)
      : writer_(writer),
        store_(store),
        files_(store),
        proxy_id_(proxy_id),
        now_(format_rfc3339_us(now_us())) {}

  void apply(const wire::Frame& f) {
    auto id_it = f.meta.find("id");
    if (id_it == f.meta.end() || !id_it->is_string() ||
        !wire::is_exchange_id(id_it->get_ref<const std::string&>())) {
      return skip_invalid();  // the decoder checks this too; file names depend on it
    }
    const std::string& id = id_it->get_ref<const std::string&>();
    if (f.type == FrameType::kBegin) return begin(id, f.meta);
    Entry* e = lookup(id);
    if (!e) {
      ++unknown;
      return;
    }
    ExchangeRow& r = e->row;
    switch (f.type) {
      case FrameType::kRequestHead: {
        if (r.request_file_size != 0) return skip_invalid();
        r.request_file_size = files_.append(r.request_file, r.request_file_size, f.data);
        r.request_head_size = static_cast<int64_t>(f.data.size());
        StoredHead head = parse_stored_head(f.data);
        r.request_content_type = header_value(head.headers, "Content-Type");
        break;
      }
      case FrameType::kRequestBody:
        r.request_file_size = files_.append(r.request_file, r.request_file_size, f.data);
        r.request_bytes = r.request_file_size - r.request_head_size;
        break;
      case FrameType::kResponseHead: {
        if (r.response_file) return skip_invalid();
        r.response_file = response_name(r.request_file);
        r.response_file_size = files_.append(*r.response_file, 0, f.data);
        r.response_head_size = static_cast<int64_t>(f.data.size());
        StoredHead head = parse_stored_head(f.data);
        if (auto code = status_code(head.start_line)) r.status = *code;
        r.response_content_type = header_value(head.headers, "Content-Type");
        r.response_content_encoding = header_value(head.headers, "Content-Encoding");
        break;
      }
      case FrameType::kResponseBody:
        if (!r.response_file) return skip_invalid();
        if (auto t = opt_int(f.meta, "t_us"); t && !f.data.empty()) {
          e->chunk_times += std::to_string(r.response_file_size - r.response_head_size);
          e->chunk_times += ',';
          e->chunk_times += std::to_string(*t);
          e->chunk_times += ';';
        }
        r.response_file_size = files_.append(*r.response_file, r.response_file_size, f.data);
        r.response_bytes = r.response_file_size - r.response_head_size;
        break;
      case FrameType::kEnd: {
        std::string outcome = str(f.meta, "outcome");
        if (!is_outcome(outcome) || outcome == kInProgress) return skip_invalid();
        r.outcome = outcome;
        e->announced = true;
        // 0 means no response reached the client; keep what the response head said, if any.
        if (auto s = opt_int(f.meta, "status"); s && *s >= 100 && *s <= 999) r.status = *s;
        r.error = opt_str(f.meta, "error");
        if (auto b = opt_int(f.meta, "request_bytes")) r.request_bytes = *b;
        if (auto b = opt_int(f.meta, "response_bytes")) r.response_bytes = *b;
        auto t = f.meta.find("timings");
        if (t != f.meta.end() && t->is_object()) {
          r.request_forwarded_us = opt_int(*t, "request_forwarded_us");
          r.upstream_headers_us = opt_int(*t, "upstream_headers_us");
          r.first_byte_us = opt_int(*t, "first_byte_us");
          r.total_us = opt_int(*t, "total_us");
          r.timings_json = t->dump(-1, ' ', false, json::error_handler_t::replace);
        }
        break;
      }
      case FrameType::kBatch:
      case FrameType::kBegin:
        break;
    }
    e->dirty = true;
    ++applied;
  }

  // Rows, the ledger entry, then the file sync; the caller commits.
  void finish(uint64_t seq) {
    for (auto& [_, e] : entries_) {
      if (e.is_new) {
        writer_.insert(e.row);
      } else if (e.dirty) {
        writer_.update(e.row);
      }
      if (!e.chunk_times.empty()) writer_.append_chunk_times(e.row.id, e.chunk_times);
      if (e.row.outcome != kInProgress) ended_.push_back(e.row.id);
      if (e.announced && collect_rows_) announced_.push_back(e.row);
    }
    writer_.mark_batch_applied(proxy_id_, seq, now_);
    files_.sync();
  }

  // Exchanges this batch left ended (for the deriver, after COMMIT).
  std::vector<std::string> ended_;
  // Rows whose begin or end frame this batch applied (for the live feed, after COMMIT);
  // collected only when someone listens.
  bool collect_rows_ = false;
  std::vector<ExchangeRow> announced_;
  size_t applied = 0;
  size_t unknown = 0;
  size_t invalid = 0;
  size_t begun = 0;
  uint64_t bytes() const { return files_.bytes_written(); }

 private:
  static std::string response_name(const std::string& request_file) {
    constexpr std::string_view kSuffix = "_request.bin";
    return request_file.substr(0, request_file.size() - kSuffix.size()) + "_response.bin";
  }

  void skip_invalid() { ++invalid; }

  // Two exchanges may not share files. An existing file is usually the leftover of an attempt
  // that never committed (then it is ours to reuse); only a row of another exchange naming it,
  // or another begin in this batch, makes it taken.
  bool name_taken(const std::string& request_file, int64_t started_us, const std::string& id) {
    if (new_files_.count(request_file)) return true;
    if (!store_.exists(request_file)) return false;
    return writer_.request_file_taken(request_file, started_us, id);
  }

  Entry* lookup(const std::string& id) {
    auto it = entries_.find(id);
    if (it != entries_.end()) return &it->second;
    if (missing_.count(id)) return nullptr;
    auto row = writer_.find(id);
    if (!row) {
      missing_.insert(id);
      return nullptr;
    }
    return &entries_.emplace(id, Entry{std::move(*row), false, false, false, {}}).first->second;
  }

  void begin(const std::string& id, const json& meta) {
    // A begin for an exchange that exists would re-create its files: never.
    if (entries_.count(id) || writer_.find(id)) return skip_invalid();
    missing_.erase(id);
    ExchangeRow r;
    r.id = id;
    r.short_id = id.substr(0, 8);
    // A missing or unreadable start time is replaced by the time of arrival.
    auto started = parse_rfc3339_us(str(meta, "started_at"));
    r.started_us = started ? *started : now_us();
    r.started_at = format_rfc3339_us(r.started_us);
    r.route = str(meta, "route");
    r.method = str(meta, "method");
    r.proxy_path = str(meta, "proxy_path");
    r.destination = str(meta, "destination");
    r.client_ip = str(meta, "client_ip");
    r.replay_of = opt_str(meta, "replay_of");
    r.request_file = BlobStore::names_for(r.started_us, id).request;
    if (name_taken(r.request_file, r.started_us, id)) {
      r.request_file = BlobStore::names_for(r.started_us, id, /*full_id=*/true).request;
    }
    new_files_.insert(r.request_file);
    r.proxy_id = proxy_id_;
    r.ingested_at = now_;
    files_.touch(r.request_file, 0);
    entries_.emplace(id,
                     Entry{std::move(r), /*is_new=*/true, /*dirty=*/true, /*announced=*/true, {}});
    ++begun;
    ++applied;
  }

  IndexWriter& writer_;
  const BlobStore& store_;
  BatchFiles files_;
  const std::string& proxy_id_;
  std::string now_;
  std::unordered_map<std::string, Entry> entries_;
  std::unordered_set<std::string> missing_;
  std::unordered_set<std::string> new_files_;  // request files of exchanges begun in this batch
};

}  // namespace

IngestResult Ingestor::apply(const wire::DecodedBatch& batch) {
  std::lock_guard lock(mu_);
  IngestResult result;
  bool in_transaction = false;
  try {
    if (writer_.batch_applied(batch.proxy_id, batch.seq)) {
      metrics_.batches_duplicate.fetch_add(1, std::memory_order_relaxed);
      result.status = IngestResult::Status::kDuplicate;
      return result;
    }
    writer_.begin();
    in_transaction = true;
    BatchApplier applier(writer_, store_, batch.proxy_id);
    applier.collect_rows_ = static_cast<bool>(rows_listener_);
    for (const wire::Frame& f : batch.frames) applier.apply(f);
    applier.finish(batch.seq);
    writer_.commit();
    in_transaction = false;
    // Rows first: the live feed shows an exchange ended before its derived fields can follow.
    // The batch is committed whatever happens here: a lost feed event (bad_alloc) must not
    // turn it into a failure the proxy would re-send.
    if (rows_listener_ && !applier.announced_.empty()) {
      try {
        rows_listener_(applier.announced_);
      } catch (const std::exception&) {
      }
    }
    if (ended_listener_ && !applier.ended_.empty()) ended_listener_(applier.ended_);

    result.frames = applier.applied;
    result.skipped = applier.unknown + applier.invalid;
    metrics_.batches_applied.fetch_add(1, std::memory_order_relaxed);
    metrics_.exchanges_ingested.fetch_add(applier.begun, std::memory_order_relaxed);
    metrics_.exchanges.fetch_add(static_cast<int64_t>(applier.begun), std::memory_order_relaxed);
    metrics_.bytes_ingested.fetch_add(applier.bytes(), std::memory_order_relaxed);
    metrics_.frames_skipped.fetch_add(result.skipped, std::memory_order_relaxed);
    if (applier.unknown) metrics_.count_error(IngestErrorKind::kUnknownExchange, applier.unknown);
    if (applier.invalid) metrics_.count_error(IngestErrorKind::kInvalidFrame, applier.invalid);
    return result;
  } catch (const DiskError& e) {
    if (in_transaction) writer_.rollback();
    result.status =
        e.disk_full() ? IngestResult::Status::kDiskFull : IngestResult::Status::kUnavailable;
    result.error = e.what();
    metrics_.count_error(e.disk_full() ? IngestErrorKind::kDiskFull : IngestErrorKind::kIo);
  } catch (const SqliteError& e) {
    if (in_transaction) writer_.rollback();
    bool full = e.code() == SQLITE_FULL;
    result.status = full ? IngestResult::Status::kDiskFull : IngestResult::Status::kUnavailable;
    result.error = std::string("index: ") + e.what();
    metrics_.count_error(full ? IngestErrorKind::kDiskFull : IngestErrorKind::kDatabase);
  } catch (const std::exception& e) {
    if (in_transaction) writer_.rollback();
    result.status = IngestResult::Status::kUnavailable;
    result.error = e.what();
    metrics_.count_error(IngestErrorKind::kIo);
  }
  return result;
}

}  // namespace lp::logsrv
