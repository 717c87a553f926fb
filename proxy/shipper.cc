#include "proxy/shipper.h"

#include <httplib.h>

#include "common/capture_wire.h"
#include "common/ids.h"
#include "common/url.h"

namespace lp {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr auto kMinBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::seconds(10);

}  // namespace

Shipper::Shipper(const Config& config, CaptureQueue& queue, const CaptureTee& tee,
                 ConsoleLog& console)
    : config_(config),
      queue_(queue),
      tee_(tee),
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
  thread_ = std::thread([this] { run(); });
}

void Shipper::stop(std::chrono::milliseconds budget) {
  if (!thread_.joinable()) return;
  stop_deadline_ns_ = (SteadyClock::now() + budget).time_since_epoch().count();
  stopping_ = true;
  queue_.close();
  thread_.join();
}

Shipper::SendResult Shipper::send(const std::string& batch) {
  httplib::Headers headers;
  auto res = client_->Post(ingest_path_.c_str(), headers, batch, "application/octet-stream");
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
  uint64_t truncated = tee_.counters().truncated.load(std::memory_order_relaxed);
  if (truncated == truncations_reported_) return;
  auto now = SteadyClock::now();
  if (truncations_reported_ != 0 && now - last_truncation_warning_ < std::chrono::minutes(1)) {
    return;
  }
  console_.line("[capture] WARNING: " + std::to_string(truncated - truncations_reported_) +
                " exchanges truncated: capture queue full (the log server takes captures "
                "slower than they come, or is unreachable with the spool full or disabled); "
                "clients are unaffected");
  truncations_reported_ = truncated;
  last_truncation_warning_ = now;
}

void Shipper::run() {
  std::optional<std::string> pending;  // a batch neither delivered nor spooled (spool full)
  auto next_attempt = SteadyClock::now();
  auto backoff = std::chrono::duration_cast<SteadyClock::duration>(kMinBackoff);
  auto failed = [&] {
    next_attempt = SteadyClock::now() + backoff;
    backoff = std::min<SteadyClock::duration>(backoff * 2, kMaxBackoff);
  };
  auto past_stop_deadline = [&] {
    return stopping_ && SteadyClock::now().time_since_epoch().count() >= stop_deadline_ns_;
  };
  while (true) {
    warn_truncations();
    // The backlog goes first, oldest first, so the log server sees batches in order.
    while (SteadyClock::now() >= next_attempt && !past_stop_deadline()) {
      std::optional<std::string> batch = pending ? pending : spool_.front();
      if (!batch) break;
      if (send(*batch) == SendResult::kFailed) {
        failed();
        break;
      }
      backoff = kMinBackoff;
      if (pending) {
        pending.reset();
      } else {
        spool_.pop_front();
      }
    }
    bool backlog = pending.has_value() || !spool_.empty();
    if (pending) {
      // Spool full: take no new frames, so the queue fills and new exchanges are truncated.
      if (stopping_) break;
      std::this_thread::sleep_until(std::min(next_attempt, SteadyClock::now() + kMaxBackoff));
      continue;
    }
    // The frames go straight behind the batch preamble (no second copy of the batch).
    std::string batch;
    wire::begin_batch(&batch, proxy_id_, seq_ + 1);
    const size_t preamble = batch.size();
    auto wait_until = backlog ? next_attempt : SteadyClock::now() + std::chrono::seconds(1);
    size_t n = queue_.pop_batch(&batch, preamble + config_.logging.batch_bytes, wait_until,
                                config_.logging.batch_interval);
    if (n == 0) {
      if (stopping_ && queue_.bytes() == 0) break;
      continue;
    }
    ++seq_;
    if (!backlog && !past_stop_deadline()) {
      SendResult r = send(batch);
      if (r != SendResult::kFailed) continue;
      failed();
    }
    if (spool_.append(seq_, proxy_id_, batch)) {
      counters_.batches_spooled.fetch_add(1, std::memory_order_relaxed);
    } else {
      console_.line("[capture] spool full or unwritable (" + spool_.error() +
                    "); new captures will be truncated until the log server is back");
      pending = std::move(batch);
    }
  }
  if (pending || queue_.bytes() > 0) {
    console_.line(
        "[capture] shutdown: captures still queued could be neither delivered nor "
        "spooled (spool full or unwritable) and are lost");
  }
  warn_truncations();
}

}  // namespace lp
