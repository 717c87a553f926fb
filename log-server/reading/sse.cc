#include "log-server/reading/sse.h"

#include <limits>

namespace lp::logsrv::reading {

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// WHATWG: "retry" is honoured only when the value consists of ASCII digits. An empty value or
// one too large for 64 bits is ignored like any other non-number.
std::optional<uint64_t> parse_retry(std::string_view v) {
  if (v.empty()) return std::nullopt;
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    n = n * 10 + digit;
  }
  return n;
}

}  // namespace

SseParser::SseParser(size_t max_event_bytes) : max_(max_event_bytes) {}

void SseParser::feed(std::string_view bytes, const OnEvent& on_event) {
  if (overflowed_) return;
  if (!bom_checked_) bytes = skip_bom(bytes, on_event);
  scan(bytes, on_event);
}

// Holds back the first bytes while they could still be a BOM split across feeds. Bytes that
// turn out not to be one are scanned as ordinary input, so nothing is lost.
std::string_view SseParser::skip_bom(std::string_view bytes, const OnEvent& on_event) {
  while (!bytes.empty() && !bom_checked_) {
    partial_.push_back(bytes.front());
    bytes.remove_prefix(1);
    if (kBom.starts_with(partial_)) {
      if (partial_.size() == kBom.size()) {
        partial_.clear();
        bom_checked_ = true;
      }
      continue;
    }
    bom_checked_ = true;
    std::string held;
    held.swap(partial_);
    scan(held, on_event);
  }
  return bytes;
}

void SseParser::scan(std::string_view b, const OnEvent& on_event) {
  // A CR ending the previous feed already ended its line; an LF right after it is its pair.
  if (after_cr_ && !b.empty()) {
    after_cr_ = false;
    if (b.front() == '\n') b.remove_prefix(1);
  }
  while (!b.empty() && !overflowed_) {
    const size_t end = b.find_first_of("\r\n");
    if (end == std::string_view::npos) {
      if (partial_.size() + b.size() > max_) return overflow();
      partial_.append(b);
      return;
    }
    const std::string_view piece = b.substr(0, end);
    // The bound is on the whole line, however it was split, so the outcome is the same.
    if (partial_.size() + piece.size() > max_) return overflow();
    if (partial_.empty()) {
      line(piece, on_event);
    } else {
      partial_.append(piece);
      std::string whole;
      whole.swap(partial_);
      line(whole, on_event);
    }
    size_t consumed = end + 1;
    if (b[end] == '\r') {
      if (consumed == b.size()) {
        after_cr_ = true;
      } else if (b[consumed] == '\n') {
        ++consumed;
      }
    }
    b.remove_prefix(consumed);
  }
}

void SseParser::line(std::string_view l, const OnEvent& on_event) {
  if (l.empty()) return dispatch(on_event);
  if (l.front() == ':') {
    ++comments_;
    return;
  }
  std::string_view name = l;
  std::string_view value;
  if (const size_t colon = l.find(':'); colon != std::string_view::npos) {
    name = l.substr(0, colon);
    value = l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (name == "event") {
    type_.assign(value);
  } else if (name == "data") {
    if (data_.size() + value.size() + 1 > max_) return overflow();
    data_.append(value);
    data_.push_back('\n');
  } else if (name == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
  } else if (name == "retry") {
    if (auto ms = parse_retry(value)) retry_ = ms;
  }
}

void SseParser::dispatch(const OnEvent& on_event) {
  if (data_.empty()) {
    type_.clear();
    return;
  }
  data_.pop_back();  // the LF the last data line appended
  SseEvent ev;
  ev.type = type_.empty() ? "message" : std::move(type_);
  ev.data = std::move(data_);
  ev.last_id = last_id_;
  type_.clear();
  data_.clear();
  ++events_;
  on_event(ev);
}

// The bound is what keeps a hostile stream from growing memory; once passed, the parser's
// state can no longer be trusted to match the stream, so the rest is ignored.
void SseParser::overflow() {
  overflowed_ = true;
  partial_.clear();
  partial_.shrink_to_fit();
  data_.clear();
  data_.shrink_to_fit();
  type_.clear();
}

bool SseParser::finish() {
  // After an overflow the event in progress never got its blank line: it is cut too.
  const bool cut = overflowed_ || !partial_.empty() || !data_.empty();
  partial_.clear();
  data_.clear();
  type_.clear();
  after_cr_ = false;
  return cut;
}

}  // namespace lp::logsrv::reading
