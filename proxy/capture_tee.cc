#include "proxy/capture_tee.h"

#include <ctime>

#include "common/capture_wire.h"

namespace lp {

std::string rfc3339_micros(std::chrono::system_clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06lldZ", static_cast<long long>(us % 1000000));
  return buf;
}

std::string captured_request_head(const RequestHead& head, std::string_view proxy_path,
                                  const Redactor& redactor) {
  RequestHead stored;
  stored.method = head.method;
  stored.target = head.target;
  stored.minor_version = head.minor_version;
  stored.headers = redactor.apply(head.headers);
  stored.headers.push_back({"X-Proxy-Path", std::string(proxy_path)});
  std::string out;
  append_request_head(&out, stored);
  return out;
}

std::string captured_response_head(const ResponseHead& head, const Redactor& redactor) {
  ResponseHead stored = head;
  stored.headers = redactor.apply(head.headers);
  std::string out;
  append_response_head(&out, stored);
  return out;
}

class CaptureObserver : public ExchangeObserver {
 public:
  CaptureObserver(CaptureTee& tee, const ExchangeInfo& info)
      : tee_(tee), id_(info.id), proxy_path_(info.proxy_path), started_(info.started) {
    nlohmann::json meta = {{"id", info.id},
                           {"route", info.route},
                           {"proxy_path", info.proxy_path},
                           {"destination", info.destination},
                           {"client_ip", info.client_ip},
                           {"started_at", rfc3339_micros(info.started_at)}};
    if (!info.method.empty()) meta["method"] = info.method;
    if (!info.replay_of.empty()) meta["replay_of"] = info.replay_of;
    push(wire::FrameType::kBegin, std::move(meta), {});
  }

  void on_request_head(const RequestHead& head) override {
    push(wire::FrameType::kRequestHead, {{"id", id_}},
         captured_request_head(head, proxy_path_, tee_.redactor_));
  }
  void on_request_body(std::string_view bytes) override {
    push(wire::FrameType::kRequestBody, {{"id", id_}}, bytes);
  }
  void on_response_head(const ResponseHead& head) override {
    push(wire::FrameType::kResponseHead, {{"id", id_}, {"t_us", micros(Clock::now())}},
         captured_response_head(head, tee_.redactor_));
  }
  void on_response_body(std::string_view bytes, Clock::time_point arrived) override {
    push(wire::FrameType::kResponseBody, {{"id", id_}, {"t_us", micros(arrived)}}, bytes);
  }
  void on_end(const ExchangeSummary& s) override {
    const ExchangeTimings& t = s.timings;
    nlohmann::json timings = {{"total_us", micros(t.end)}};
    if (t.request_forwarded != Clock::time_point{}) {
      timings["request_forwarded_us"] = micros(t.request_forwarded);
    }
    if (t.upstream_headers != Clock::time_point{}) {
      timings["upstream_headers_us"] = micros(t.upstream_headers);
    }
    if (t.first_body_byte != Clock::time_point{})
      timings["first_byte_us"] = micros(t.first_body_byte);
    nlohmann::json meta = {{"id", id_},
                           {"outcome", outcome_name(truncated_ ? Outcome::kTruncated : s.outcome)},
                           {"status", s.status},
                           {"request_bytes", s.request_body_bytes},
                           {"response_bytes", s.response_body_bytes},
                           {"timings", std::move(timings)}};
    std::string error = truncated_ ? "capture queue full: frames dropped" : s.error;
    if (truncated_ && !s.error.empty()) error += "; " + s.error;
    if (!error.empty()) meta["error"] = error;
    std::string frame;
    wire::append_frame(&frame, wire::FrameType::kEnd, meta, {});
    tee_.queue_.push(std::move(frame), /*force=*/true);
  }

 private:
  int64_t micros(Clock::time_point t) const {
    return std::chrono::duration_cast<std::chrono::microseconds>(t - started_).count();
  }
  void push(wire::FrameType type, nlohmann::json meta, std::string_view data) {
    if (truncated_) return;
    // Body pieces are at most 64 KiB; a head is bounded by max_header_bytes. Split anything
    // larger anyway so no frame exceeds the wire limit.
    do {
      std::string_view piece = data.substr(0, wire::kMaxDataBytes);
      data.remove_prefix(piece.size());
      std::string frame;
      wire::append_frame(&frame, type, meta, piece);
      if (!tee_.queue_.push(std::move(frame))) {
        truncated_ = true;
        tee_.counters_.truncated.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    } while (!data.empty());
  }

  CaptureTee& tee_;
  const std::string id_;
  const std::string proxy_path_;
  const Clock::time_point started_;
  bool truncated_ = false;
};

std::unique_ptr<ExchangeObserver> CaptureTee::start(const ExchangeInfo& info) {
  counters_.exchanges.fetch_add(1, std::memory_order_relaxed);
  return std::make_unique<CaptureObserver>(*this, info);
}

}  // namespace lp
