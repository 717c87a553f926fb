#include "log-server/ingest.h"

#include <sqlite3.h>

#include <algorithm>
#include <memory>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "common/http_message.h"
#include "common/time_format.h"
#include "log-server/frame_meta.h"
#include "log-server/list_query.h"

namespace lp::logsrv {

namespace {

using wire::FrameType;

// The exchange state one batch works on: loaded on first reference, written back once.
struct Entry {
  ExchangeRow row;
  bool is_new = false;  // begun in this batch: INSERT rather than UPDATE
  bool dirty = false;
  bool announced = false;   // its begin or end frame is in this batch (for the live feed)
  std::string chunk_times;  // "OFFSET,T_US;" of this batch's response body frames
};

// Looks entries up by a view of the id, without making a string of it.
struct IdHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};

class BatchApplier {
 public:
  BatchApplier(IndexWriter& writer, const BlobStore& store, const std::string& proxy_id)
      : writer_(writer),
        store_(store),
        files_(store),
        proxy_id_(proxy_id),
        now_(format_rfc3339_us(now_us())) {}

  void apply(const wire::FrameView& f) {
    const std::string_view id = f.id();
    // The decoder checks this too; file names depend on it.
    if (!wire::is_exchange_id(id)) return skip_invalid();
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
      case FrameType::kResponseBody: {
        if (!r.response_file) return skip_invalid();
        if (!f.data.empty()) {
          auto meta = read_frame_meta(f.meta);
          if (!meta) return skip_invalid();
          if (auto t = meta->t_us.opt_int()) {
            e->chunk_times += std::to_string(r.response_file_size - r.response_head_size);
            e->chunk_times += ',';
            e->chunk_times += std::to_string(*t);
            e->chunk_times += ';';
          }
        }
        r.response_file_size = files_.append(*r.response_file, r.response_file_size, f.data);
        r.response_bytes = r.response_file_size - r.response_head_size;
        break;
      }
      case FrameType::kEnd: {
        auto meta = read_frame_meta(f.meta);
        if (!meta) return skip_invalid();
        std::string outcome = meta->outcome.str();
        if (!is_outcome(outcome) || outcome == kInProgress) return skip_invalid();
        r.outcome = std::move(outcome);
        e->announced = true;
        // 0 means no response reached the client; keep what the response head said, if any.
        if (auto s = meta->status.opt_int(); s && *s >= 100 && *s <= 999) r.status = *s;
        r.error = meta->error.opt_str();
        if (auto b = meta->request_bytes.opt_int()) r.request_bytes = *b;
        if (auto b = meta->response_bytes.opt_int()) r.response_bytes = *b;
        if (meta->has_timings) {
          r.request_forwarded_us = meta->request_forwarded_us;
          r.upstream_headers_us = meta->upstream_headers_us;
          r.first_byte_us = meta->first_byte_us;
          r.total_us = meta->total_us;
          r.timings_json = std::move(meta->timings_json);
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

  // Rows, the ledger entry, and the batch's bytes written out (not synced: the caller syncs
  // files(), with those of the other batches of its transaction, then commits).
  void finish(uint64_t seq) {
    for (auto& [_, e] : entries_) {
      if (e.is_new) {
        writer_.insert(e.row, e.chunk_times);
      } else {
        if (e.dirty) writer_.update(e.row);
        if (!e.chunk_times.empty()) writer_.append_chunk_times(e.row.id, e.chunk_times);
      }
      if (e.row.outcome != kInProgress) ended_.push_back(e.row.id);
      // The entries are not used after this: the live feed gets the row itself.
      if (e.announced && collect_rows_) announced_.push_back(std::move(e.row));
    }
    writer_.mark_batch_applied(proxy_id_, seq, now_);
    files_.flush();
  }
  BatchFiles& files() { return files_; }

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

  // Frames of one exchange mostly follow each other: the last entry is checked first.
  Entry* lookup(std::string_view id) {
    if (last_ && last_->row.id == id) return last_;
    auto it = entries_.find(id);
    if (it != entries_.end()) return last_ = &it->second;
    if (missing_.find(id) != missing_.end()) return nullptr;
    auto row = writer_.find(std::string(id));
    if (!row) {
      missing_.emplace(id);
      return nullptr;
    }
    std::string key = row->id;
    return last_ =
               &entries_.emplace(std::move(key), Entry{std::move(*row), false, false, false, {}})
                    .first->second;
  }

  // Creates the request file of an exchange begun now. Two exchanges may not share files. An
  // existing file is usually the leftover of an attempt that never committed (then it is ours
  // to reuse); only a row of another exchange naming it, or another begin in this batch, makes
  // it taken: then the name with the whole id is used.
  std::string create_request_file(int64_t started_us, const std::string& id) {
    std::string name = BlobStore::names_for(started_us, id).request;
    if (!new_files_.count(name)) {
      if (files_.create(name)) return name;
      if (!writer_.request_file_taken(name, started_us, id)) {
        files_.touch(name, 0);
        return name;
      }
    }
    name = BlobStore::names_for(started_us, id, /*full_id=*/true).request;
    files_.touch(name, 0);
    return name;
  }

  void begin(std::string_view id_view, std::string_view meta_json) {
    // A begin for an exchange that exists would re-create its files: never.
    if (entries_.find(id_view) != entries_.end()) return skip_invalid();
    std::string id(id_view);
    if (writer_.exists(id)) return skip_invalid();
    auto meta = read_frame_meta(meta_json);
    if (!meta) return skip_invalid();
    if (auto m = missing_.find(id_view); m != missing_.end()) missing_.erase(m);
    ExchangeRow r;
    r.id = id;
    r.short_id = id.substr(0, 8);
    // A missing or unreadable start time is replaced by the time of arrival.
    auto started = parse_rfc3339_us(meta->started_at.str());
    r.started_us = started ? *started : now_us();
    r.started_at = format_rfc3339_us(r.started_us);
    r.route = meta->route.take_str();
    r.method = meta->method.take_str();
    r.proxy_path = meta->proxy_path.take_str();
    r.destination = meta->destination.take_str();
    r.client_ip = meta->client_ip.take_str();
    r.replay_of = meta->replay_of.opt_str();
    r.request_file = create_request_file(r.started_us, id);
    new_files_.insert(r.request_file);
    r.proxy_id = proxy_id_;
    r.ingested_at = now_;
    last_ = &entries_
                 .emplace(std::move(id), Entry{std::move(r),
                                               /*is_new=*/true,
                                               /*dirty=*/true,
                                               /*announced=*/true,
                                               {}})
                 .first->second;
    ++begun;
    ++applied;
  }

  IndexWriter& writer_;
  const BlobStore& store_;
  BatchFiles files_;
  const std::string& proxy_id_;
  std::string now_;
  std::unordered_map<std::string, Entry, IdHash, std::equal_to<>> entries_;
  Entry* last_ = nullptr;  // the entry of the last frame applied
  std::unordered_set<std::string, IdHash, std::equal_to<>> missing_;
  std::unordered_set<std::string> new_files_;  // request files of exchanges begun in this batch
};

// The frames of a batch decoded with its JSON objects (decode_batch, the tests), as views:
// their meta is written out again into `storage`, which must outlive the views.
std::vector<wire::FrameView> views_of(const std::vector<wire::Frame>& frames,
                                      std::vector<std::string>* storage) {
  std::vector<wire::FrameView> views;
  views.reserve(frames.size());
  storage->reserve(frames.size());
  for (const wire::Frame& f : frames) {
    wire::FrameView v{f.type, {}, {}, f.data};
    auto id = f.meta.find("id");
    std::string_view id_text;
    if (id != f.meta.end() && id->is_string()) id_text = id->get_ref<const std::string&>();
    if (id_text.size() != v.id_chars.size()) continue;  // decode_batch never lets one through
    std::copy(id_text.begin(), id_text.end(), v.id_chars.begin());
    storage->push_back(f.meta.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    v.meta = storage->back();
    views.push_back(v);
  }
  return views;
}

}  // namespace

IngestResult Ingestor::apply(const wire::DecodedBatch& batch, std::optional<uint64_t> after) {
  Request me{&batch, after, std::chrono::steady_clock::now() + order_wait_, {}};
  std::unique_lock lock(mu_);
  queue_.push_back(&me);
  while (!me.done) {
    const bool expired = std::chrono::steady_clock::now() >= me.deadline;
    if (!leading_) {
      lead(lock);
      if (me.done) break;
      // Still queued after the leader's last pass: it follows a batch not applied yet.
      if (std::chrono::steady_clock::now() >= me.deadline) {
        queue_.erase(std::find(queue_.begin(), queue_.end(), &me));
        metrics_.batches_out_of_order.fetch_add(1, std::memory_order_relaxed);
        me.result.status = IngestResult::Status::kOutOfOrder;
        me.result.error = "batch " + std::to_string(batch.seq) + " follows batch " +
                          std::to_string(after.value_or(0)) + ", which was not applied within " +
                          std::to_string(order_wait_.count()) + " ms";
        break;
      }
      done_cv_.wait_until(lock, me.deadline);
    } else if (!expired) {
      done_cv_.wait_until(lock, me.deadline);
    } else {
      done_cv_.wait(lock);  // the leader wakes expired requests when it leaves
    }
  }
  return me.result;
}

void Ingestor::lead(std::unique_lock<std::mutex>& lock) {
  leading_ = true;
  while (true) {
    const std::vector<Request*> queued = queue_;
    lock.unlock();
    std::vector<std::optional<IngestResult>> results = apply_group(queued);
    lock.lock();
    size_t decided = 0;
    for (size_t i = 0; i < queued.size(); ++i) {
      if (!results[i]) continue;
      queued[i]->result = std::move(*results[i]);
      queued[i]->done = true;
      queue_.erase(std::find(queue_.begin(), queue_.end(), queued[i]));
      ++decided;
    }
    if (decided > 0) done_cv_.notify_all();
    // Another pass when this one changed something (a batch waiting for one just applied may
    // go now) or batches arrived meanwhile; otherwise every queued batch waits for another.
    const bool arrived = queue_.size() > queued.size() - decided;
    if (decided == 0 && !arrived) break;
  }
  leading_ = false;
  const auto now = std::chrono::steady_clock::now();
  if (std::any_of(queue_.begin(), queue_.end(),
                  [&](const Request* r) { return r->deadline <= now; }))
    done_cv_.notify_all();
}

std::vector<std::optional<IngestResult>> Ingestor::apply_group(
    const std::vector<Request*>& queued) {
  std::vector<std::optional<IngestResult>> out(queued.size());
  std::vector<size_t> members;  // indexes into queued, in the order they are applied
  try {
    // (proxy_id, seq) of the batches this group applies before the one being looked at.
    std::set<std::pair<std::string_view, uint64_t>> in_group;
    auto in_this_group = [&](const wire::DecodedBatch& b, uint64_t seq) {
      return in_group.count({b.proxy_id, seq}) > 0;
    };
    // Passes in arrival order until none joins: a batch whose predecessor arrived after it
    // joins behind it.
    for (bool joined = true; joined && members.size() < kMaxGroup;) {
      joined = false;
      for (size_t i = 0; i < queued.size() && members.size() < kMaxGroup; ++i) {
        if (out[i] || std::find(members.begin(), members.end(), i) != members.end()) continue;
        Request& r = *queued[i];
        const wire::DecodedBatch& b = *r.batch;
        // A copy of a member waits for the group's outcome: if it fails, the copy applies.
        if (in_this_group(b, b.seq)) continue;
        if (writer_.batch_applied(b.proxy_id, b.seq)) {
          metrics_.batches_duplicate.fetch_add(1, std::memory_order_relaxed);
          out[i] = IngestResult{IngestResult::Status::kDuplicate, 0, 0, {}};
          continue;
        }
        if (r.after && *r.after != b.seq && !in_this_group(b, *r.after) &&
            !writer_.batch_applied(b.proxy_id, *r.after)) {
          // The batch it follows is on another connection, not applied yet (or lost: then
          // the proxy re-sends this one after it, without `after`).
          if (!r.waited) {
            r.waited = true;
            metrics_.batches_waited.fetch_add(1, std::memory_order_relaxed);
          }
          continue;
        }
        members.push_back(i);
        in_group.insert({b.proxy_id, b.seq});
        joined = true;
      }
    }
  } catch (const std::exception& e) {
    // The look-ups failed (the index is unreadable): nothing is applied; all are answered.
    for (size_t i = 0; i < queued.size(); ++i) {
      if (!out[i])
        out[i] = IngestResult{IngestResult::Status::kUnavailable, 0, 0,
                              std::string("index: ") + e.what()};
    }
    metrics_.count_error(IngestErrorKind::kDatabase);
    return out;
  }
  if (members.empty()) return out;
  std::vector<Request*> group;
  group.reserve(members.size());
  for (size_t i : members) group.push_back(queued[i]);
  std::vector<IngestResult> results;
  commit_group(group, &results);
  for (size_t k = 0; k < members.size(); ++k) out[members[k]] = std::move(results[k]);
  return out;
}

void Ingestor::commit_group(const std::vector<Request*>& members,
                            std::vector<IngestResult>* results) {
  results->assign(members.size(), IngestResult{});
  std::vector<std::unique_ptr<BatchApplier>> appliers;
  bool in_transaction = false;
  auto fail_all = [&](IngestResult::Status status, const std::string& error) {
    if (in_transaction) writer_.rollback();
    for (IngestResult& r : *results) {
      r.status = status;
      r.error = error;
    }
  };
  try {
    writer_.begin();
    in_transaction = true;
    std::vector<BatchFiles*> files;
    for (Request* r : members) {
      const wire::DecodedBatch& batch = *r->batch;
      appliers.push_back(std::make_unique<BatchApplier>(writer_, store_, batch.proxy_id));
      BatchApplier& applier = *appliers.back();
      applier.collect_rows_ = static_cast<bool>(rows_listener_);
      std::vector<std::string> storage;
      std::vector<wire::FrameView> converted;
      if (!batch.frames.empty()) converted = views_of(batch.frames, &storage);
      const std::vector<wire::FrameView>& frames = batch.frames.empty() ? batch.views : converted;
      for (const wire::FrameView& f : frames) applier.apply(f);
      applier.finish(batch.seq);
      files.push_back(&applier.files());
    }
    BatchFiles::sync_all(files);
    writer_.commit();
    in_transaction = false;
  } catch (const DiskError& e) {
    fail_all(e.disk_full() ? IngestResult::Status::kDiskFull : IngestResult::Status::kUnavailable,
             e.what());
    metrics_.count_error(e.disk_full() ? IngestErrorKind::kDiskFull : IngestErrorKind::kIo);
    return;
  } catch (const SqliteError& e) {
    const bool full = e.code() == SQLITE_FULL;
    fail_all(full ? IngestResult::Status::kDiskFull : IngestResult::Status::kUnavailable,
             std::string("index: ") + e.what());
    metrics_.count_error(full ? IngestErrorKind::kDiskFull : IngestErrorKind::kDatabase);
    return;
  } catch (const std::exception& e) {
    fail_all(IngestResult::Status::kUnavailable, e.what());
    metrics_.count_error(IngestErrorKind::kIo);
    return;
  }
  // Committed, batch by batch in order. Rows first: the live feed shows an exchange ended
  // before its derived fields can follow. A lost feed event (bad_alloc) must not turn a
  // committed batch into a failure the proxy would re-send.
  for (size_t k = 0; k < appliers.size(); ++k) {
    BatchApplier& applier = *appliers[k];
    if (rows_listener_ && !applier.announced_.empty()) {
      try {
        rows_listener_(applier.announced_);
      } catch (const std::exception&) {
      }
    }
    if (ended_listener_ && !applier.ended_.empty()) {
      try {
        ended_listener_(applier.ended_);
      } catch (const std::exception&) {
      }
    }
    IngestResult& result = (*results)[k];
    result.frames = applier.applied;
    result.skipped = applier.unknown + applier.invalid;
    metrics_.batches_applied.fetch_add(1, std::memory_order_relaxed);
    metrics_.exchanges_ingested.fetch_add(applier.begun, std::memory_order_relaxed);
    metrics_.exchanges.fetch_add(static_cast<int64_t>(applier.begun), std::memory_order_relaxed);
    metrics_.bytes_ingested.fetch_add(applier.bytes(), std::memory_order_relaxed);
    metrics_.frames_skipped.fetch_add(result.skipped, std::memory_order_relaxed);
    if (applier.unknown) metrics_.count_error(IngestErrorKind::kUnknownExchange, applier.unknown);
    if (applier.invalid) metrics_.count_error(IngestErrorKind::kInvalidFrame, applier.invalid);
  }
  metrics_.groups_committed.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace lp::logsrv
