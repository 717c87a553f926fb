#include "proxy/capture_tee.h"

#include <charconv>
#include <utility>

#include "common/capture_wire.h"
#include "common/json_writer.h"
#include "common/time_format.h"

namespace lp {
namespace {

// Frames of one exchange are gathered in one buffer and pushed together: a short call (begin,
// heads, bodies, end: ~3 KB for a 1 KB JSON call) costs one queue push and one allocation
// instead of six. The buffer is pushed when it reaches kCoalesceBytes, when its oldest frame
// is kCoalesceAge old as a new frame arrives (so a slow stream reaches the log server at most
// one event late), and at the end. What waits here is bounded per exchange by kCoalesceBytes
// plus one frame.
constexpr size_t kCoalesceBytes = 8 * 1024;
constexpr auto kCoalesceAge = std::chrono::milliseconds(10);
// Texts in the begin/end metas come from clients and upstreams (paths, error texts). The wire
// caps a meta at 64 KiB (wire::kMaxMetaBytes) and JSON escaping can grow a byte sixfold, so
// each is clipped: a meta over the cap would make the log server reject the whole batch, other
// exchanges included. The full path stays in the stored request head (X-Proxy-Path).
constexpr size_t kMaxMetaText = 4 * 1024;
std::string_view clip(std::string_view text) {
  return text.substr(0, kMaxMetaText);
}
constexpr size_t kInitialBuffer = 4 * 1024;

// A response whose head does not give its length (an event stream, NDJSON lines, any chunked
// or close-delimited body) may wait long for its first byte; one with a Content-Length is
// whole soon enough to go out with its body.
bool may_be_a_stream(const ResponseHead& head) {
  return is_event_stream(head.headers) || find_header(head.headers, "Content-Length") == nullptr;
}

// One spare buffer per event-loop thread: an exchange that starts takes its capacity (an
// exchange running beside it on the same loop finds it empty and allocates), one that ends
// gives its buffer back, so a loop's exchanges reuse capacity instead of allocating.
thread_local std::string spare_buffer;

void append_target(std::string* out, std::string_view target, const Redactor& redactor) {
  if (redactor.enabled()) {
    append_redacted_query(out, target);
  } else {
    out->append(target);
  }
}

// Headers whose value is a URL: credentials in their query are masked like the target's.
bool is_url_header(std::string_view name) {
  return iequals(name, "Location") || iequals(name, "Content-Location");
}

void append_headers(std::string* out, const HeaderList& headers, const Redactor& redactor) {
  for (const auto& h : headers) {
    out->append(h.name).append(": ");
    if (redactor.applies_to(h.name)) {
      out->append(redact_value(h.value));
    } else if (redactor.enabled() && is_url_header(h.name)) {
      append_redacted_query(out, h.value);  // a redirect to a signed URL, or our own 301
    } else {
      out->append(h.value);
    }
    out->append("\r\n");
  }
}

// The same bytes as append_request_head / append_response_head of a redacted copy, without
// copying the header list.
void append_captured_request_head(std::string* out, const RequestHead& head,
                                  std::string_view proxy_path, const Redactor& redactor) {
  out->append(head.method).append(" ");
  append_target(out, head.target, redactor);
  out->append(" HTTP/1.");
  out->push_back(static_cast<char>('0' + head.minor_version));
  out->append("\r\n");
  append_headers(out, head.headers, redactor);
  out->append("X-Proxy-Path: ");
  append_target(out, proxy_path, redactor);
  out->append("\r\n\r\n");
}

void append_captured_response_head(std::string* out, const ResponseHead& head,
                                   const Redactor& redactor) {
  char status[16];
  auto r = std::to_chars(status, status + sizeof status, head.status);
  out->append("HTTP/1.");
  out->push_back(static_cast<char>('0' + head.minor_version));
  out->append(" ").append(status, static_cast<size_t>(r.ptr - status)).append(" ");
  out->append(head.reason).append("\r\n");
  append_headers(out, head.headers, redactor);
  out->append("\r\n");
}

}  // namespace

std::string captured_request_head(const RequestHead& head, std::string_view proxy_path,
                                  const Redactor& redactor) {
  std::string out;
  append_captured_request_head(&out, head, proxy_path, redactor);
  return out;
}

std::string captured_response_head(const ResponseHead& head, const Redactor& redactor) {
  std::string out;
  append_captured_response_head(&out, head, redactor);
  return out;
}

class CaptureObserver : public ExchangeObserver {
 public:
  CaptureObserver(CaptureTee& tee, const ExchangeInfo& info)
      : tee_(tee), id_(info.id), proxy_path_(info.proxy_path), started_(info.started) {
    buf_.swap(spare_buffer);
    buf_.clear();
    // Meta keys in nlohmann's sorted order (common/json_writer.h).
    size_t at = open(wire::FrameType::kBegin, info.started);
    JsonObjectWriter m(&buf_);
    m.field("client_ip", info.client_ip);
    if (redactor().enabled()) {
      scratch_.clear();
      append_redacted_query(&scratch_, info.destination);
      m.field("destination", clip(scratch_));
    } else {
      m.field("destination", clip(info.destination));
    }
    m.field("id", id_);
    if (!info.method.empty()) m.field("method", info.method);
    if (redactor().enabled()) {
      scratch_.clear();
      append_redacted_query(&scratch_, info.proxy_path);
      m.field("proxy_path", clip(scratch_));
    } else {
      m.field("proxy_path", clip(info.proxy_path));
    }
    if (!info.replay_of.empty()) m.field("replay_of", info.replay_of);
    m.field("route", info.route);
    char started_at[kRfc3339UsCapacity];
    const int64_t started_us =
        std::chrono::duration_cast<std::chrono::microseconds>(info.started_at.time_since_epoch())
            .count();
    m.field("started_at", std::string_view(started_at, format_rfc3339_us(started_us, started_at)));
    m.close();
    wire::finish_frame(&buf_, at, {});
    begin_bytes_ = heads_bytes_ = buf_.size();
  }

  ~CaptureObserver() override {
    if (buf_.capacity() <= 4 * kCoalesceBytes) spare_buffer.swap(buf_);
  }

  void on_request_head(const RequestHead& head) override {
    if (truncated_) return;
    auto now = tee_.now_();
    size_t at = open(wire::FrameType::kRequestHead, now);
    id_meta();
    size_t data_at = wire::finish_meta(&buf_, at);
    append_captured_request_head(&buf_, head, proxy_path_, redactor());
    wire::finish_data(&buf_, at, data_at);
    if (heads_bytes_ == at) heads_bytes_ = buf_.size();
    maybe_flush(now);
  }
  void on_request_body(std::string_view bytes) override {
    if (truncated_) return;
    auto now = tee_.now_();
    body(wire::FrameType::kRequestBody, bytes, now, /*with_time=*/false);
    maybe_flush(now);
  }
  void on_response_head(const ResponseHead& head) override {
    if (truncated_) return;
    auto now = tee_.now_();
    size_t at = open(wire::FrameType::kResponseHead, now);
    id_meta(micros(now));
    size_t data_at = wire::finish_meta(&buf_, at);
    append_captured_response_head(&buf_, head, redactor());
    wire::finish_data(&buf_, at, data_at);
    if (heads_bytes_ == at) heads_bytes_ = buf_.size();
    if (may_be_a_stream(head)) {
      // A stream's start goes out now, not with its first event (which may be minutes
      // away: a local model loading): the log server shows it begun, and the wait holds no
      // buffer.
      if (!push(/*force=*/false)) truncate();
    } else {
      maybe_flush(now);
    }
  }
  void on_response_body(std::string_view bytes, Clock::time_point arrived) override {
    if (truncated_) return;
    body(wire::FrameType::kResponseBody, bytes, arrived, /*with_time=*/true);
    maybe_flush(arrived);
  }
  void on_end(const ExchangeSummary& s) override {
    if (!truncated_) {
      append_end(s);
      if (push(/*force=*/false)) return;
      truncate();
    }
    // The end frame is always admitted, and with it the begin frame if that never reached the
    // queue, so the log server records the exchange as truncated rather than not at all.
    buf_.resize(begin_bytes_);
    append_end(s);
    if (!push(/*force=*/true)) tee_.counters_.unrecorded.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  const Redactor& redactor() const { return tee_.redactor_; }
  int64_t micros(Clock::time_point t) const {
    return std::chrono::duration_cast<std::chrono::microseconds>(t - started_).count();
  }
  static int64_t micros(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  }

  size_t open(wire::FrameType type, Clock::time_point now) {
    if (buf_.empty()) {
      oldest_ = now;
      if (!pushed_ && buf_.capacity() < kInitialBuffer) buf_.reserve(kInitialBuffer);
    }
    return wire::start_frame(&buf_, type);
  }
  void id_meta() {
    JsonObjectWriter m(&buf_);
    m.field("id", id_);
    m.close();
  }
  void id_meta(int64_t t_us) {
    JsonObjectWriter m(&buf_);
    m.field("id", id_);
    m.field("t_us", t_us);
    m.close();
  }
  void body(wire::FrameType type, std::string_view data, Clock::time_point t, bool with_time) {
    // Body pieces are at most 64 KiB; split anything larger anyway so no frame exceeds the
    // wire limit.
    do {
      std::string_view piece = data.substr(0, wire::kMaxDataBytes);
      data.remove_prefix(piece.size());
      size_t at = open(type, t);
      if (with_time) {
        id_meta(micros(t));
      } else {
        id_meta();
      }
      wire::finish_frame(&buf_, at, piece);
      if (!data.empty()) maybe_flush(t);
    } while (!data.empty() && !truncated_);
  }
  void maybe_flush(Clock::time_point now) {
    if (truncated_) return;
    if (buf_.size() < kCoalesceBytes && now - oldest_ < kCoalesceAge) return;
    if (!push(/*force=*/false)) truncate();
  }
  // Pushes what is buffered; false if the queue refused it (nothing was queued then).
  bool push(bool force) {
    if (buf_.empty()) return true;
    bool ok;
    if (buf_.size() >= kCoalesceBytes || buf_.size() * 2 >= buf_.capacity()) {
      ok = tee_.queue_.push(std::move(buf_), force);  // hand the buffer itself over
    } else {
      // Mostly empty (a lone stream event): an exact-size copy, so what the queue counts is
      // what it holds.
      ok = tee_.queue_.push(std::string(buf_), force);
      // A slow stream holds only the event waiting for the next one, not a buffer's capacity:
      // thousands of open streams each keep little more than a frame between events.
      if (ok) std::string().swap(buf_);
    }
    if (ok) {
      buf_.clear();
      pushed_ = true;
      begin_bytes_ = heads_bytes_ = 0;  // the begin frame is queued
    }
    return ok;
  }
  // The queue refused what is buffered. As when each frame was pushed alone, the frames before
  // the first body piece (begin, heads: small) may still fit; the rest is dropped. A begin frame
  // that does not fit either stays to go with the end frame.
  void truncate() {
    truncated_ = true;
    tee_.counters_.truncated.fetch_add(1, std::memory_order_relaxed);
    if (heads_bytes_ > 0 && heads_bytes_ < buf_.size()) {
      buf_.resize(heads_bytes_);
      if (push(/*force=*/false)) return;
    }
    buf_.resize(begin_bytes_);
  }
  void append_end(const ExchangeSummary& s) {
    const ExchangeTimings& t = s.timings;
    size_t at = open(wire::FrameType::kEnd, t.end);
    JsonObjectWriter m(&buf_);  // keys in nlohmann's sorted order
    if (truncated_) {
      scratch_ = "capture queue full: frames dropped";
      if (!s.error.empty()) scratch_.append("; ").append(s.error);
      m.field("error", clip(scratch_));
    } else if (!s.error.empty()) {
      m.field("error", clip(s.error));
    }
    m.field("id", id_);
    m.field("outcome", outcome_name(truncated_ ? Outcome::kTruncated : s.outcome));
    m.field("request_bytes", s.request_body_bytes);
    m.field("response_bytes", s.response_body_bytes);
    m.field("status", s.status);
    m.open_object("timings");
    if (t.first_body_byte != Clock::time_point{})
      m.field("first_byte_us", micros(t.first_body_byte));
    if (t.request_forwarded != Clock::time_point{}) {
      m.field("proxy_overhead_us", micros(t.request_forwarded) - micros(t.upstream_connect));
      m.field("request_forwarded_us", micros(t.request_forwarded));
    }
    if (t.response_chunks > 0) {
      m.field("response_chunk_delay_max_us", micros(t.chunk_delay_max));
      m.field("response_chunk_delay_total_us", micros(t.chunk_delay_total));
    }
    m.field("response_chunks", t.response_chunks);
    m.field("total_us", micros(t.end));
    if (t.new_upstream_connection) m.field("upstream_connect_us", micros(t.upstream_connect));
    if (t.upstream_headers != Clock::time_point{}) {
      m.field("upstream_headers_us", micros(t.upstream_headers));
    }
    m.close_object();
    m.close();
    wire::finish_frame(&buf_, at, {});
  }

  CaptureTee& tee_;
  const std::string id_;
  const std::string proxy_path_;
  const Clock::time_point started_;
  std::string buf_;           // encoded frames not yet pushed
  std::string scratch_;       // a redacted path, an error text
  size_t heads_bytes_ = 0;    // begin and head frames at the front of buf_, before any body frame
  size_t begin_bytes_ = 0;    // the begin frame's bytes at the front of buf_, until pushed
  Clock::time_point oldest_;  // when buf_'s first frame was made
  bool truncated_ = false;
  bool pushed_ = false;  // something was pushed: later frames grow buf_ as they need
};

std::unique_ptr<ExchangeObserver> CaptureTee::start(const ExchangeInfo& info) {
  counters_.exchanges.fetch_add(1, std::memory_order_relaxed);
  return std::make_unique<CaptureObserver>(*this, info);
}

}  // namespace lp
