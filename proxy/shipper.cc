#include "proxy/shipper.h"

#include <httplib.h>

#include <algorithm>

#include "common/capture_wire.h"
#include "common/ids.h"
#include "common/url.h"

namespace lp {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr auto kMinBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::seconds(10);
// A spooled batch is sent as it is: well under the log server's 64 MiB batch limit, and applied
// within the 10 s request timeout.
constexpr size_t kMaxSpoolCut = size_t{16} << 20;
// Below this much room the spool counts as full (a batch of a few small exchanges).
constexpr size_t kMinSpoolCut = size_t{16} << 10;
// The batch preamble (proxy id, seq) on top of the frames.
constexpr uint64_t kBatchOverhead = 1024;

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
  client_ = std::make_unique<httplib::Client>(url->origin());
  client_->set_keep_alive(true);
  client_->set_tcp_nodelay(true);
  client_->set_connection_timeout(std::chrono::seconds(2));
  client_->set_read_timeout(std::chrono::seconds(10));
  client_->set_write_timeout(std::chrono::seconds(10));
  client_->set_decompress(false);
  if (!config.log_server.auth_token.empty()) {
    client_->set_bearer_token_auth(config.log_server.auth_token.c_str());
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
  sender_ = std::thread([this] { sender_run(); });
  thread_ = std::thread([this] { run(); });
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
  sender_.join();
}

void Shipper::begin_send(const std::string* batch) {
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    send_job_ = batch;
    send_result_.reset();
  }
  send_cv_.notify_all();
}

std::optional<Shipper::SendResult> Shipper::poll_send() {
  std::lock_guard<std::mutex> lock(send_mu_);
  std::optional<SendResult> r = send_result_;
  send_result_.reset();
  return r;
}

std::optional<Shipper::SendResult> Shipper::await_send(SteadyClock::time_point deadline) {
  std::unique_lock<std::mutex> lock(send_mu_);
  send_cv_.wait_until(lock, deadline, [&] { return send_result_.has_value(); });
  std::optional<SendResult> r = send_result_;
  send_result_.reset();
  return r;
}

void Shipper::sender_run() {
  std::unique_lock<std::mutex> lock(send_mu_);
  while (true) {
    send_cv_.wait(lock, [&] { return send_job_ != nullptr || sender_exit_; });
    if (send_job_ == nullptr) return;
    const std::string* batch = send_job_;
    lock.unlock();
    const SendResult r = send(*batch);
    lock.lock();
    send_job_ = nullptr;
    send_result_ = r;
    send_cv_.notify_all();
    lock.unlock();
    queue_.wake();
    lock.lock();
  }
}

Shipper::SendResult Shipper::send(const std::string& batch) {
  httplib::Headers headers;
  auto res = client_->Post(ingest_path_.c_str(), headers, batch, "application/octet-stream");
  counters_.log_server.store(res ? ShipperCounters::LogServer::kReachable
                                 : ShipperCounters::LogServer::kUnreachable);
  if (!res) {
    counters_.send_failures.fetch_add(1, std::memory_order_relaxed);
    if (!server_down_) {
      console_.line("[capture] log server " + config_.logging.server_url + " unreachable (" +
                    httplib::to_string(res.error()) + "); spooling to " +
                    config_.logging.spool_dir);
      server_down_ = true;
    }
    return SendResult::kFailed;
  }
  if (res->status >= 200 && res->status < 300) {
    if (server_down_) {
      console_.line("[capture] log server " + config_.logging.server_url + " is back");
      server_down_ = false;
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
  if (!server_down_) {
    console_.line("[capture] log server answered " + std::to_string(res->status) +
                  (res->status == 401 ? " (check log_server.auth_token)" : "") + "; spooling to " +
                  config_.logging.spool_dir);
    server_down_ = true;
  }
  return SendResult::kFailed;
}

void Shipper::warn_truncations() {
  uint64_t truncated = capture_.truncated.load(std::memory_order_relaxed);
  if (truncated == truncations_reported_) return;
  auto now = SteadyClock::now();
  if (truncations_reported_ != 0 && now - last_truncation_warning_ < std::chrono::minutes(1)) {
    return;
  }
  console_.line("[capture] WARNING: " + std::to_string(truncated - truncations_reported_) +
                " exchanges truncated: capture queue full while the spool was full, disabled "
                "or unwritable (raise logging.spool_max_bytes, or bring the log server "
                "back); clients are unaffected");
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
    Held held;  // for kSpool, a copy of the spool's front (its slot and seq unused)
  };
  std::optional<InFlight> in_flight;
  // Both bounded to one batch. `oldest`: a sent batch that failed and the spool refused; it
  // is older than everything spooled. `refused`: a batch cut for the spool that the spool
  // refused; newer than everything spooled, older than the queue. While `refused` is held no
  // more frames are taken, so the queue bounds the rest.
  std::optional<Held> oldest;
  std::optional<Held> refused;
  bool failing = false;  // the last send failed: keep the backoff, spool what is cut
  auto next_attempt = SteadyClock::now();
  auto backoff = std::chrono::duration_cast<SteadyClock::duration>(kMinBackoff);
  auto past_stop_deadline = [&] {
    return stopping_ && SteadyClock::now().time_since_epoch().count() >= stop_deadline_ns_;
  };
  auto on_outcome = [&](SendResult r) {
    InFlight f = std::move(*in_flight);
    in_flight.reset();
    if (r == SendResult::kFailed) {
      failing = true;
      next_attempt = SteadyClock::now() + backoff;
      backoff = std::min<SteadyClock::duration>(backoff * 2, kMaxBackoff);
      if (f.source == Source::kSpool) return;  // still the spool's front
      if (spool_.append_at(f.held.slot, f.held.seq, proxy_id_, f.held.batch)) {
        counters_.batches_spooled.fetch_add(1, std::memory_order_relaxed);
      } else {
        spool_full_episode(spool_.error());
        oldest = std::move(f.held);
      }
      return;
    }
    failing = false;
    backoff = kMinBackoff;
    if (f.source == Source::kSpool) spool_.pop_front();
  };
  std::string cut;
  while (true) {
    warn_truncations();
    counters_.spool_batches.store(spool_.count(), std::memory_order_relaxed);
    counters_.spool_bytes.store(spool_.bytes(), std::memory_order_relaxed);
    if (in_flight) {
      if (auto r = poll_send()) on_outcome(*r);
    }
    const auto now = SteadyClock::now();
    // Oldest first: a held failed batch, the spool, a batch the spool refused, then the queue.
    if (!in_flight && now >= next_attempt && !past_stop_deadline()) {
      std::optional<InFlight> next;
      if (oldest) {
        next = InFlight{Source::kMemory, std::move(*oldest)};
        oldest.reset();
      } else if (std::optional<std::string> b = spool_.front()) {
        next = InFlight{Source::kSpool, Held{std::move(*b), 0, 0}};
      } else if (refused) {
        next = InFlight{Source::kMemory, std::move(*refused)};
        next->held.slot = spool_.reserve();
        refused.reset();
      }
      if (next) {
        in_flight = std::move(next);
        begin_send(&in_flight->held.batch);
        continue;
      }
    }
    const bool backlog = oldest || refused || !spool_.empty();
    const bool closed = queue_.closed();
    // A batch cut for the spool may exceed batch_bytes by its last frame's header and preamble.
    // Batches cut for the spool take up to the high-water mark (one fsync moves all of it, so
    // the disk keeps up with a burst), but no more than the spool has room for.
    const size_t spool_cut = static_cast<size_t>(std::min<uint64_t>(
        std::clamp(queue_.high_water(), config_.logging.batch_bytes, kMaxSpoolCut),
        spool_.room() > kBatchOverhead ? spool_.room() - kBatchOverhead : 0));
    const bool spool_room = spool_cut >= kMinSpoolCut;
    const bool stuck = past_stop_deadline() && (refused || !spool_room);
    if (closed && ((queue_.bytes() == 0 && !refused) || stuck)) {
      // Nothing more will be queued (or can be kept): finish the send in flight, then end.
      if (!in_flight) break;
      if (auto r = await_send(now + std::chrono::seconds(1))) on_outcome(*r);
      continue;
    }
    if (!backlog && !failing && !in_flight && !past_stop_deadline()) {
      // The usual path: the next batch straight from the queue to the log server.
      // The backlog is gone: a new overflow or a full spool is a new episode, told again.
      overflow_told_ = false;
      spool_full_told_ = false;
      if (cut_batch(&cut, config_.logging.batch_bytes, now + std::chrono::seconds(1),
                    config_.logging.batch_interval) == 0) {
        continue;
      }
      in_flight = InFlight{Source::kMemory, Held{std::move(cut), seq_, spool_.reserve()}};
      begin_send(&in_flight->held.batch);
      continue;
    }
    // The queue's frames cannot go to the log server now: the link is failing, older batches
    // wait in the spool, or a POST is in flight. They go to the spool behind the backlog when
    // there is one or the link fails (the order must continue on disk), or when the queue
    // passes high water; otherwise they wait in memory for the POST in flight.
    const auto until = in_flight ? now + std::chrono::seconds(1)
                                 : std::clamp(next_attempt, now, now + std::chrono::seconds(1));
    auto idle = [&](bool for_high_water) {
      if (!closed) return queue_.wait(until, for_high_water);
      if (in_flight) {
        if (auto r = await_send(until)) on_outcome(*r);
      } else {
        std::this_thread::sleep_until(until);
      }
      return queue_.bytes() >= queue_.high_water();
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
    } else if (overflow) {
      counters_.batches_overflowed.fetch_add(1, std::memory_order_relaxed);
      if (!overflow_told_) {
        overflow_told_ = true;
        console_.line("[capture] log server slower than the traffic: capture queue past " +
                      std::to_string(queue_.high_water()) + " bytes, spooling to " +
                      config_.logging.spool_dir);
      }
    }
  }
  if (oldest && spool_.append_at(oldest->slot, oldest->seq, proxy_id_, oldest->batch)) {
    oldest.reset();
  }
  if (refused && spool_.append(refused->seq, proxy_id_, refused->batch)) refused.reset();
  if (oldest || refused || queue_.bytes() > 0) {
    console_.line(
        "[capture] shutdown: captures still queued could be neither delivered nor "
        "spooled (spool full or unwritable) and are lost");
  }
  warn_truncations();
}

}  // namespace lp
