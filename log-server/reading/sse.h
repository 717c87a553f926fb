// Server-sent events, parsed exactly per WHATWG HTML §9.2.6 ("event stream interpretation"):
// lines end at CRLF, LF or CR (a CR at the end of one feed and an LF at the start of the next
// are one line end); one leading BOM is skipped; ':' lines are comments; "data" lines join
// with '\n'; an event with an empty data buffer is not dispatched; "id" persists across events
// (ignored when it contains NUL); "retry" only when all digits; unknown fields are ignored.
// Incremental and pure: bytes in any split in, events out, no I/O. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace lp::logsrv::reading {

struct SseEvent {
  std::string type;     // "message" when no event field was given
  std::string data;     // the data lines joined with '\n' (no trailing '\n')
  std::string last_id;  // the last-event-ID buffer at dispatch
};

class SseParser {
 public:
  using OnEvent = std::function<void(const SseEvent&)>;

  // `max_event_bytes` bounds one line and one event's data buffer (a stream that never ends
  // a line cannot grow memory without limit); passing it makes overflowed() true and the
  // rest of the stream is ignored.
  explicit SseParser(size_t max_event_bytes = 16 * 1024 * 1024);

  void feed(std::string_view bytes, const OnEvent& on_event);
  // End of stream. Per the spec a pending event without its blank line is discarded:
  // returns true when such an unterminated event (non-empty data buffer or a partial line)
  // was dropped, so a caller can flag the stream as cut.
  bool finish();

  uint64_t events() const { return events_; }      // dispatched events
  uint64_t comments() const { return comments_; }  // comment lines (keep-alives)
  std::optional<uint64_t> retry_ms() const { return retry_; }
  bool overflowed() const { return overflowed_; }

 private:
  std::string_view skip_bom(std::string_view bytes, const OnEvent& on_event);
  void scan(std::string_view bytes, const OnEvent& on_event);
  void line(std::string_view l, const OnEvent& on_event);
  void dispatch(const OnEvent& on_event);
  void overflow();

  size_t max_;
  std::string partial_;  // an incomplete line carried to the next feed
  bool bom_checked_ = false;
  bool after_cr_ = false;  // the previous feed ended with CR: a leading LF is its pair
  std::string type_;
  std::string data_;
  std::string last_id_;
  std::optional<uint64_t> retry_;
  uint64_t events_ = 0;
  uint64_t comments_ = 0;
  bool overflowed_ = false;
};

}  // namespace lp::logsrv::reading
