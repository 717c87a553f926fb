#include "proxy/shipper.h"

#include <httplib.h>

#include <algorithm>
#include <deque>
#include <list>
#include <utility>

#include "common/capture_wire.h"
#include "common/ids.h"
#include "common/thread_name.h"
#include "common/url.h"

namespace lp {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr auto kMinBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::seconds(10);
// A batch cut for the spool holds about batch_bytes of frames, but at least kMinSpoolBatch (a
// small batch_bytes would cost an fsync per few frames) and at most kMaxSpoolCut: each cut is
// held whole in memory beside a full queue, and so is a spooled batch read back to be sent.
// Measured (bench S4, a disk that syncs 300-800 MB/s): 1 MiB cuts move a burst to disk as
// fast as 16 MiB ones, and the proxy's peak RSS drops by 3x the difference.
constexpr size_t kMinSpoolBatch = size_t{1} << 20;
constexpr size_t kMaxSpoolCut = size_t{4} << 20;
// Below this much room the spool counts as full (a batch of a few small exchanges).
constexpr size_t kMinSpoolCut = size_t{16} << 10;
// The batch preamble (proxy id, seq) on top of the frames.
constexpr uint64_t kBatchOverhead = 1024;
// Spooled batches are read back whole to be sent; past the first, more go out together only
// while they hold at most this much in all.
constexpr uint64_t kMaxSpoolBytesInFlight = 2 * kMaxSpoolCut;

}  // namespace

Shipper::Shipper(const Config& config, CaptureQueue& queue, const CaptureCounters& capture,
                 ConsoleLog& console)
    : config_(config),
      queue_(queue),
      capture_(capture),
      console_(console),
      spool_(config.logging.spool_dir, config.logging.spool_max_bytes),
      proxy_id_(new_uuid()) {
  std::string error;
  std::optional<Url> url = parse_url(config.logging.server_url, &error);
  if (!url) throw std::runtime_error("logging.server_url " + error);
  for (Sender& sender : senders_) {
    sender.client = std::make_unique<httplib::Client>(url->origin());
    httplib::Client& c = *sender.client;
    c.set_keep_alive(true);
    c.set_tcp_nodelay(true);
    c.set_connection_timeout(std::chrono::seconds(2));
    c.set_read_timeout(std::chrono::seconds(10));
    c.set_write_timeout(std::chrono::seconds(10));
    c.set_decompress(false);
    if (!config.log_server.auth_token.empty()) {
      c.set_bearer_token_auth(config.log_server.auth_token.c_str());
    }
  }
  std::string base = url->path;
  while (!base.empty() && base.back() == '/') base.pop_back();
  ingest_path_ = base + "/ingest";
  if (!spool_.empty()) {
    console_.line("[capture] " + std::to_string(spool_.count()) + " spooled batches (" +
                  std::to_string(spool_.bytes()) + " bytes) in " + config.logging.spool_dir +
                  " will be re-sent");
  }
}

Shipper::~Shipper() {
  stop(std::chrono::seconds(0));
}

void Shipper::start() {
  for (size_t i = 0; i < senders_.size(); ++i) {
    senders_[i].thread = std::thread([this, i] {
      name_this_thread("lp-send-" + std::to_string(i));
      sender_run(i);
    });
  }
  thread_ = std::thread([this] {
    name_this_thread("lp-ship");
    run();
  });
}

void Shipper::stop(std::chrono::milliseconds budget) {
  if (!thread_.joinable()) return;
  stop_deadline_ns_ = (SteadyClock::now() + budget).time_since_epoch().count();
  stopping_ = true;
  queue_.close();
  thread_.join();
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    sender_exit_ = true;
  }
  send_cv_.notify_all();
  for (Sender& sender : senders_) sender.thread.join();
}

void Shipper::begin_send(size_t sender, const std::string* batch, std::optional<uint64_t> after) {
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    Sender& s = senders_[sender];
    if (s.job != nullptr) std::abort();  // the shipper thread hands work to idle senders only
    s.job = batch;
    s.after = after;
    s.result.reset();
  }
  send_cv_.notify_all();
}

std::optional<Shipper::Outcome> Shipper::poll_send() {
  std::lock_guard<std::mutex> lock(send_mu_);
  for (size_t i = 0; i < senders_.size(); ++i) {
    if (std::optional<SendResult> r = senders_[i].result) {
      senders_[i].result.reset();
      return Outcome{i, *r};
    }
  }
  return std::nullopt;
}

std::optional<Shipper::Outcome> Shipper::await_send(SteadyClock::time_point deadline) {
  {
    std::unique_lock<std::mutex> lock(send_mu_);
    send_cv_.wait_until(lock, deadline, [&] {
      return std::any_of(senders_.begin(), senders_.end(),
                         [](const Sender& s) { return s.result.has_value(); });
    });
  }
  return poll_send();
}

void Shipper::sender_run(size_t i) {
  Sender& me = senders_[i];
  std::unique_lock<std::mutex> lock(send_mu_);
  while (true) {
    send_cv_.wait(lock, [&] { return me.job != nullptr || sender_exit_; });
    if (me.job == nullptr) return;
    const std::string* batch = me.job;
    const std::optional<uint64_t> after = me.after;
    lock.unlock();
    const SendResult r = send(*me.client, *batch, after);
    lock.lock();
    me.job = nullptr;
    me.result = r;
    send_cv_.notify_all();
    lock.unlock();
    queue_.wake();
    lock.lock();
  }
}

Shipper::SendResult Shipper::send(httplib::Client& client, const std::string& batch,
                                  std::optional<uint64_t> after) {
  httplib::Headers headers;
  if (after) headers.emplace(std::string(wire::kAfterHeader), std::to_string(*after));
  // Sent from the caller's string: the overload taking a body string would copy the batch.
  auto res = client.Post(
      ingest_path_.c_str(), headers, batch.size(),
      [&batch](size_t offset, size_t length, httplib::DataSink& sink) {
        return sink.write(batch.data() + offset, std::min(length, batch.size() - offset));
      },
      "application/octet-stream");
  counters_.log_server.store(res ? ShipperCounters::LogServer::kReachable
                                 : ShipperCounters::LogServer::kUnreachable);
  if (!res) {
    counters_.send_failures.fetch_add(1, std::memory_order_relaxed);
    if (!server_down_.exchange(true)) {
      console_.line("[capture] log server " + config_.logging.server_url + " unreachable (" +
                    httplib::to_string(res.error()) + "); spooling to " +
                    config_.logging.spool_dir);
    }
    return SendResult::kFailed;
  }
  // A log server replaced by one that does not order batches is noticed at its first answer.
  ordered_.store(res->get_header_value(std::string(wire::kOrderedHeader).c_str()) == "1");
  if (res->status >= 200 && res->status < 300) {
    if (server_down_.exchange(false)) {
      console_.line("[capture] log server " + config_.logging.server_url + " is back");
    }
    counters_.batches_sent.fetch_add(1, std::memory_order_relaxed);
    return SendResult::kDelivered;
  }
  if (res->status == 400 || res->status == 413 || res->status == 422) {
    // The log server says this batch can never be applied; retrying would loop forever.
    counters_.batches_rejected.fetch_add(1, std::memory_order_relaxed);
    console_.line("[capture] log server rejected a batch (" + std::to_string(res->status) +
                  "): " + res->body.substr(0, 200));
    return SendResult::kRejected;
  }
  counters_.send_failures.fetch_add(1, std::memory_order_relaxed);
  // 409: the batch before it, on another connection, failed; it is re-sent after that one.
  if (res->status != 409 && !server_down_.exchange(true)) {
    console_.line("[capture] log server answered " + std::to_string(res->status) +
                  (res->status == 401 ? " (check log_server.auth_token)" : "") + "; spooling to " +
                  config_.logging.spool_dir);
  }
  return SendResult::kFailed;
}

std::string Shipper::unrecorded_text() {
  const uint64_t unrecorded = capture_.unrecorded.load(std::memory_order_relaxed);
  const uint64_t n = unrecorded - std::exchange(unrecorded_reported_, unrecorded);
  if (n == 0) return "";
  return "; " + std::to_string(n) +
         " of them not recorded at all (the queue's reserve for truncation records was full "
         "too)";
}

void Shipper::warn_truncations() {
  uint64_t truncated = capture_.truncated.load(std::memory_order_relaxed);
  if (truncated == truncations_reported_) return;
  auto now = SteadyClock::now();
  if (truncations_reported_ != 0 && now - last_truncation_warning_ < std::chrono::minutes(1)) {
    return;
  }
  // With room left in a working spool, the queue filled because frames arrived faster than
  // the shipper could spool them (a body at memory speed: the disk, or on a busy host the
  // shipper's share of the CPU, is behind).
  const bool spooling_behind =
      config_.logging.spool_max_bytes > 0 && !spool_full_told_ && spool_.room() >= kMinSpoolCut;
  console_.line("[capture] WARNING: " + std::to_string(truncated - truncations_reported_) +
                " exchanges truncated: " +
                (spooling_behind ? "capture queue full while the spool was being written: captures "
                                   "arrived faster than they could be spooled (raise "
                                   "logging.queue_bytes to absorb such bursts)"
                                 : "capture queue full while the spool was full, disabled or "
                                   "unwritable (raise logging.spool_max_bytes, or bring the log "
                                   "server back)") +
                unrecorded_text() + "; clients are unaffected");
  truncations_reported_ = truncated;
  last_truncation_warning_ = now;
}

size_t Shipper::cut_batch(std::string* out, size_t max_frame_bytes,
                          SteadyClock::time_point first_frame_deadline,
                          SteadyClock::duration batch_age) {
  // The frames go straight behind the batch preamble (no second copy of the batch).
  out->clear();
  wire::begin_batch(out, proxy_id_, seq_ + 1);
  const size_t preamble = out->size();
  size_t n = queue_.pop_batch(out, preamble + max_frame_bytes, first_frame_deadline, batch_age);
  if (n > 0) ++seq_;
  return n;
}

void Shipper::spool_full_episode(const std::string& why) {
  if (spool_full_told_) return;
  spool_full_told_ = true;
  console_.line("[capture] spool full or unwritable (" + why +
                "); captures wait in memory and new ones are truncated when it is full too");
}

bool Shipper::spool_behind(const std::string& batch, uint64_t seq) {
  if (spool_.append(seq, proxy_id_, batch)) {
    counters_.batches_spooled.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  spool_full_episode(spool_.error());
  return false;
}

void Shipper::run() {
  enum class Source { kMemory, kSpool };
  struct InFlight {
    Source source;
    Held held;  // for kSpool, a copy of a spooled batch and its seq (slot unused)
    size_t sender = 0;
    uint64_t spool_id = 0;    // kSpool: the batch's id in the spool
    std::string batch_proxy;  // kSpool: the proxy_id it was cut by (this or an earlier run)

    static InFlight memory(Held held) { return {Source::kMemory, std::move(held), 0, 0, {}}; }
    static InFlight spooled(Spool::Stored b) {
      return {Source::kSpool, Held{std::move(b.bytes), b.seq, 0}, 0, b.id, std::move(b.proxy_id)};
    }
  };
  // In send order; a list, so that a batch a sender reads stays where it is while others end.
  std::list<InFlight> in_flight;
  // Both bounded. `oldest`: sent batches that failed and the spool refused, by slot (at most
  // one per sender); older than everything spooled. `refused`: a batch cut for the spool that
  // the spool refused; newer than everything spooled, older than the queue. While `refused`
  // is held no more frames are taken, so the queue bounds the rest.
  std::deque<Held> oldest;
  std::optional<Held> refused;
  bool failing = false;  // the last send failed: keep the backoff, spool what is cut
  // The spooled batch after which the next one is of another proxy run, so it is not sent
  // before this one is acknowledged (a kAfterHeader names a batch of the same proxy_id).
  std::optional<uint64_t> pipeline_stop;
  auto next_attempt = SteadyClock::now();
  auto backoff = std::chrono::duration_cast<SteadyClock::duration>(kMinBackoff);
  auto past_stop_deadline = [&] {
    return stopping_ && SteadyClock::now().time_since_epoch().count() >= stop_deadline_ns_;
  };
  std::string cut;
  // What this thread holds of the capture memory, which the queue's bound counts: the batch
  // being cut (its buffer is reused), those in flight, those held for a refusing spool.
  auto report_outside = [&] {
    size_t bytes = cut.capacity();
    for (const InFlight& f : in_flight) bytes += f.held.batch.capacity();
    for (const Held& h : oldest) bytes += h.batch.capacity();
    if (refused) bytes += refused->batch.capacity();
    queue_.set_outside(bytes);
  };
  auto start_send = [&](InFlight f, std::optional<uint64_t> after) {
    std::array<bool, kMaxBatchesInFlight> busy{};
    for (const InFlight& g : in_flight) busy[g.sender] = true;
    f.sender = static_cast<size_t>(std::find(busy.begin(), busy.end(), false) - busy.begin());
    if (f.sender == busy.size()) std::abort();  // callers keep in_flight below the senders
    in_flight.push_back(std::move(f));
    begin_send(in_flight.back().sender, &in_flight.back().held.batch, after);
    report_outside();  // a batch read back from the spool is new memory
  };
  auto on_outcome = [&](const Outcome& outcome) {
    auto it = std::find_if(in_flight.begin(), in_flight.end(),
                           [&](const InFlight& f) { return f.sender == outcome.first; });
    if (it == in_flight.end()) std::abort();  // an outcome from a sender with no batch
    InFlight f = std::move(*it);
    in_flight.erase(it);
    if (outcome.second == SendResult::kFailed) {
      failing = true;
      next_attempt = SteadyClock::now() + backoff;
      backoff = std::min<SteadyClock::duration>(backoff * 2, kMaxBackoff);
      if (f.source == Source::kSpool) return;  // still in the spool
      if (spool_.append_at(f.held.slot, f.held.seq, proxy_id_, f.held.batch)) {
        counters_.batches_spooled.fetch_add(1, std::memory_order_relaxed);
      } else {
        spool_full_episode(spool_.error());
        auto at = std::find_if(oldest.begin(), oldest.end(),
                               [&](const Held& h) { return h.slot > f.held.slot; });
        oldest.insert(at, std::move(f.held));
      }
      return;
    }
    failing = false;
    backoff = kMinBackoff;
    if (f.source == Source::kSpool) spool_.remove(f.spool_id);
  };
  // The spooled batch after the last one in flight, when it may go out now: the log server
  // applies it only after that one (kAfterHeader), so spooled batches stream to it without
  // waiting each for the one before. Never after a failure (then the oldest goes alone).
  auto next_spooled = [&]() -> std::optional<InFlight> {
    const size_t max_in_flight = ordered_.load() ? kMaxBatchesInFlight : 1;
    if (in_flight.empty() || in_flight.size() >= max_in_flight || failing || !oldest.empty()) {
      return std::nullopt;
    }
    uint64_t bytes = 0;
    for (const InFlight& f : in_flight) {
      if (f.source != Source::kSpool) return std::nullopt;
      bytes += f.held.batch.size();
    }
    const InFlight& last = in_flight.back();
    if (pipeline_stop == last.spool_id) return std::nullopt;
    const uint64_t size = spool_.next_size(last.spool_id);
    if (size == 0 || bytes + size > kMaxSpoolBytesInFlight) return std::nullopt;
    std::optional<Spool::Stored> b = spool_.next(last.spool_id);
    if (!b) return std::nullopt;
    if (b->proxy_id != last.batch_proxy) {
      pipeline_stop = last.spool_id;
      return std::nullopt;
    }
    return InFlight::spooled(std::move(*b));
  };
  while (true) {
    warn_truncations();
    counters_.spool_batches.store(spool_.count(), std::memory_order_relaxed);
    counters_.spool_bytes.store(spool_.bytes(), std::memory_order_relaxed);
    while (!in_flight.empty()) {
      std::optional<Outcome> r = poll_send();
      if (!r) break;
      on_outcome(*r);
    }
    counters_.batches_in_flight.store(in_flight.size(), std::memory_order_relaxed);
    report_outside();  // what the outcomes just taken freed, before any decision reads it
    const auto now = SteadyClock::now();
    // Oldest first: held failed batches, the spool, a batch the spool refused; one at a time
    // but for spooled batches (next_spooled).
    if (in_flight.empty() && now >= next_attempt && !past_stop_deadline()) {
      std::optional<InFlight> next;
      if (!oldest.empty()) {
        next = InFlight::memory(std::move(oldest.front()));
        oldest.pop_front();
      } else if (std::optional<Spool::Stored> b = spool_.front()) {
        next = InFlight::spooled(std::move(*b));
      } else if (refused) {
        next = InFlight::memory(std::move(*refused));
        next->held.slot = spool_.reserve();
        refused.reset();
      }
      if (next) {
        start_send(std::move(*next), std::nullopt);
        continue;
      }
    } else if (now >= next_attempt && !past_stop_deadline()) {
      if (std::optional<InFlight> next = next_spooled()) {
        const uint64_t after = in_flight.back().held.seq;
        start_send(std::move(*next), after);
        continue;
      }
    }
    const bool backlog = !oldest.empty() || refused || !spool_.empty();
    const bool closed = queue_.closed();
    // A batch cut for the spool may exceed its size by its last frame's header and preamble,
    // and takes no more than the spool has room for.
    const size_t spool_cut = static_cast<size_t>(
        std::min<uint64_t>(std::clamp(config_.logging.batch_bytes, kMinSpoolBatch, kMaxSpoolCut),
                           spool_.room() > kBatchOverhead ? spool_.room() - kBatchOverhead : 0));
    const bool spool_room = spool_cut >= kMinSpoolCut;
    const bool stuck = past_stop_deadline() && (refused || !spool_room);
    if (closed && ((queue_.bytes() == 0 && !refused) || stuck)) {
      // Nothing more will be queued (or can be kept): finish the sends in flight, then end.
      if (in_flight.empty()) break;
      if (auto r = await_send(now + std::chrono::seconds(1))) on_outcome(*r);
      continue;
    }
    const bool only_memory = std::all_of(in_flight.begin(), in_flight.end(), [](const InFlight& f) {
      return f.source == Source::kMemory;
    });
    const size_t max_in_flight = ordered_.load() ? kMaxBatchesInFlight : 1;
    if (!backlog && !failing && !past_stop_deadline() && only_memory &&
        in_flight.size() < max_in_flight) {
      // The usual path: the next batch straight from the queue to the log server.
      size_t n = 0;
      if (in_flight.empty()) {
        // The backlog is gone: a new overflow or a full spool is a new episode, told again.
        overflow_told_ = false;
        spool_full_told_ = false;
        n = cut_batch(&cut, config_.logging.batch_bytes, now + std::chrono::seconds(1),
                      config_.logging.batch_interval);
      } else {
        // Another connection only for a full batch: small batches each cost the log server
        // an fsync, so below that the frames wait for the batch in flight.
        const size_t full = std::min(config_.logging.batch_bytes, queue_.high_water());
        if (queue_.bytes() < full) {
          // Woken by a sender's outcome too.
          if (!closed)
            queue_.wait_for_bytes(now + std::chrono::seconds(1), full);
          else if (auto r = await_send(now + std::chrono::seconds(1)))
            on_outcome(*r);
          continue;
        }
        n = cut_batch(&cut, config_.logging.batch_bytes, now, SteadyClock::duration::zero());
      }
      if (n == 0) continue;
      std::optional<uint64_t> after;
      if (!in_flight.empty()) after = in_flight.back().held.seq;
      start_send(InFlight::memory(Held{std::move(cut), seq_, spool_.reserve()}), after);
      continue;
    }
    // The queue's frames cannot go to the log server now: the link is failing, older batches
    // wait in the spool, or a POST is in flight. They go to the spool behind the backlog when
    // there is one or the link fails (the order must continue on disk), or when the queue
    // passes high water; otherwise they wait in memory for the POST in flight.
    const auto until = !in_flight.empty()
                           ? now + std::chrono::seconds(1)
                           : std::clamp(next_attempt, now, now + std::chrono::seconds(1));
    auto idle = [&](bool for_high_water) {
      if (!closed) return queue_.wait(until, for_high_water);
      if (!in_flight.empty()) {
        if (auto r = await_send(until)) on_outcome(*r);
      } else {
        std::this_thread::sleep_until(until);
      }
      return queue_.past_high_water();
    };
    if (refused) {
      idle(false);
      continue;
    }
    const bool spool_now = backlog || failing || past_stop_deadline();
    if (!spool_now && !idle(true)) continue;
    if (!spool_room) {
      if (config_.logging.spool_max_bytes > 0) {
        spool_full_episode(std::to_string(spool_.bytes()) + " of " +
                           std::to_string(config_.logging.spool_max_bytes) + " bytes used");
      }
      idle(false);
      continue;
    }
    const bool overflow = !spool_now;
    if (cut_batch(&cut, spool_cut, overflow || closed ? now : until,
                  overflow ? SteadyClock::duration::zero() : config_.logging.batch_interval) == 0) {
      continue;
    }
    if (!spool_behind(cut, seq_)) {
      refused = Held{std::move(cut), seq_, 0};
      continue;
    }
    std::string().swap(cut);  // on disk now: its memory is room for the queue again
    if (overflow) {
      counters_.batches_overflowed.fetch_add(1, std::memory_order_relaxed);
      if (!overflow_told_) {
        overflow_told_ = true;
        console_.line("[capture] log server slower than the traffic: capture queue past " +
                      std::to_string(queue_.high_water()) + " bytes, spooling to " +
                      config_.logging.spool_dir);
      }
    }
  }
  while (!oldest.empty() && spool_.append_at(oldest.front().slot, oldest.front().seq, proxy_id_,
                                             oldest.front().batch)) {
    oldest.pop_front();
  }
  if (refused && spool_.append(refused->seq, proxy_id_, refused->batch)) refused.reset();
  counters_.batches_in_flight.store(0, std::memory_order_relaxed);
  if (!oldest.empty() || refused || queue_.bytes() > 0) {
    console_.line(
        "[capture] shutdown: captures still queued could be neither delivered nor "
        "spooled (spool full or unwritable) and are lost");
  }
  warn_truncations();
}

}  // namespace lp
