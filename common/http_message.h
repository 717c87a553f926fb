// HTTP/1.1 message heads and body framing (RFC 9112), parsed from raw bytes.
// The proxy keeps headers exactly as received (order, case, repeats, bytes) and is strict
// where leniency enables request smuggling: no bare LF, no obs-fold, no CL+TE, no
// conflicting Content-Length, no malformed chunk sizes. Pure code: no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ascii.h"

namespace lp {

struct Header {
  std::string name;
  std::string value;
};
using HeaderList = std::vector<Header>;

// First value of `name`, or nullptr.
const std::string* find_header(const HeaderList& headers, std::string_view name);
// The first value of `name` as a copy, or nullopt.
std::optional<std::string> header_value(const HeaderList& headers, std::string_view name);
// Whether Content-Type says Server-Sent Events ("text/event-stream", any parameters).
bool is_event_stream(const HeaderList& headers);
// Whether a comma-separated header value contains `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token);
// Whether any `name` header contains `token`.
bool headers_have_token(const HeaderList& headers, std::string_view name, std::string_view token);

struct RequestHead {
  std::string method;
  // As received: origin-form "/path?query" (or "*" for OPTIONS); with HeadLimits::proxy_forms
  // also authority-form "host:port" (CONNECT) or absolute-form "http(s)://host/path?query".
  std::string target;
  int minor_version = 1;  // HTTP/1.x
  HeaderList headers;

  std::string_view path() const;   // target up to '?'
  std::string_view query() const;  // after '?', without it
};

struct ResponseHead {
  int minor_version = 1;
  int status = 0;
  std::string reason;
  HeaderList headers;
};

// Outcome of parsing a head from the bytes received so far.
struct ParseResult {
  enum class State { kIncomplete, kDone, kError };
  State state = State::kIncomplete;
  size_t consumed = 0;   // bytes of the head, including the final blank line (kDone)
  int error_status = 0;  // kError: the status to answer with (400, 414, 431, 501, 505)
  std::string error;     // kError: a sentence naming the problem
};

struct HeadLimits {
  size_t max_head_bytes = 64 * 1024;    // whole head; beyond: 431 (request) or error
  size_t max_request_line = 16 * 1024;  // beyond: 414
  size_t max_headers = 500;             // header count; beyond: 431
  // A forward proxy's request forms: CONNECT with an authority-form target ("host:port", no
  // Host header required) and absolute-form "http://..." (or "https://...", which `logging-proxy
  // replay` sends for an intercepted capture) targets. Off: 501 and 400.
  bool proxy_forms = false;
};

ParseResult parse_request_head(std::string_view buf, const HeadLimits& limits, RequestHead* out);
// Responses come from the upstream we chose; still reject anything that could split or
// smuggle (control characters, obs-fold), but tolerate bare LF line endings as browsers do.
ParseResult parse_response_head(std::string_view buf, const HeadLimits& limits, ResponseHead* out);

struct BodyFraming {
  // kNone: the message has no body by its semantics (HEAD, 1xx, 204, 304, or a request
  // without Content-Length or Transfer-Encoding). kLength may be 0 ("Content-Length: 0").
  enum class Kind { kNone, kLength, kChunked, kUntilClose };
  Kind kind = Kind::kNone;
  uint64_t length = 0;  // kLength
};

struct FramingResult {
  BodyFraming framing;
  int error_status = 0;  // non-zero: reject the request with this status
  std::string error;
};

// Request body framing; rejects CL together with TE, differing or malformed CL, and any
// transfer coding other than a final "chunked".
FramingResult request_framing(const RequestHead& head);
// Response body framing per RFC 9112 §6.3 given the request method.
FramingResult response_framing(std::string_view request_method, const ResponseHead& head);

// Incremental decoder for a chunked body. feed() consumes bytes and reports the decoded
// data through `sink`; it stops after the last chunk and trailers (done() becomes true) and
// returns how many input bytes it consumed so the rest stays for the next message.
class ChunkedDecoder {
 public:
  struct Result {
    size_t consumed = 0;
    bool error = false;
    std::string message;
  };
  template <typename Sink>
  Result feed(std::string_view in, Sink&& sink) {
    Result r;
    while (r.consumed < in.size() && !done() && !r.error) {
      std::string_view data;
      r.consumed += step(in.substr(r.consumed), &data, &r);
      if (!data.empty()) sink(data);
    }
    return r;
  }
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State {
    kSize,
    kSizeWs,
    kSizeExt,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailer,
    kTrailerLf,
    kDone
  };
  size_t step(std::string_view in, std::string_view* data, Result* r);

  State state_ = State::kSize;
  uint64_t remaining_ = 0;
  int size_digits_ = 0;
  size_t line_bytes_ = 0;     // bytes of the current size or trailer line (bounded)
  size_t trailer_bytes_ = 0;  // all trailer bytes (bounded)
  bool trailer_line_empty_ = true;
};

// A head as the proxy stored it, read back by the log server: lenient by design, a stored head
// is shown as it was, never rejected.
struct StoredHead {
  std::string start_line;  // "POST /v1/x HTTP/1.1"
  HeaderList headers;      // in order, repeats kept
};
// Splits on CRLF (bare LF tolerated) up to the blank line or the end of `raw`. Lines without
// a colon are skipped; names and values are trimmed of surrounding spaces and tabs.
StoredHead parse_stored_head(std::string_view raw);
// 200 for "HTTP/1.1 200 OK"; nullopt when the start line is not a status line.
std::optional<int> status_code(std::string_view start_line);
// An Accept-Encoding value without the elements naming `coding` (ASCII case-insensitive,
// parameters such as ";q=0.9" going with their element): "gzip, deflate, br" without "br" is
// "gzip, deflate". Other elements are kept as written, joined by ", ".
std::string without_coding(std::string_view accept_encoding, std::string_view coding);

void append_request_head(std::string* out, const RequestHead& head);
void append_response_head(std::string* out, const ResponseHead& head);
// Standard reason phrase, or "Unknown".
std::string_view reason_phrase(int status);

}  // namespace lp
