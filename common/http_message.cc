#include "common/http_message.h"

#include <algorithm>
#include <charconv>

namespace lp {
namespace {

bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return is_tchar(static_cast<unsigned char>(c)); });
}

// Field values may hold visible characters, obs-text, SP and HTAB; anything else (CR, LF,
// NUL, DEL, other controls) is how header injection and smuggling start.
bool is_field_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

ParseResult error(int status, std::string message) {
  ParseResult r;
  r.state = ParseResult::State::kError;
  r.error_status = status;
  r.error = std::move(message);
  return r;
}

// Splits the head into lines. With `allow_bare_lf` false, an LF not preceded by CR is an
// error. Returns the offset just past the blank line ending the head, 0 if not there yet,
// or npos on a bare LF.
size_t find_head_end(std::string_view buf, bool allow_bare_lf) {
  for (size_t i = buf.find('\n'); i != std::string_view::npos; i = buf.find('\n', i + 1)) {
    bool crlf = i > 0 && buf[i - 1] == '\r';
    if (!crlf && !allow_bare_lf) return std::string_view::npos;
    // Blank line: the previous line ended right before this one began.
    size_t line_start = crlf ? i - 1 : i;
    if (line_start == 0) return i + 1;
    if (buf[line_start - 1] == '\n') return i + 1;
  }
  return 0;
}

// Parses "name: value" lines between `begin` and `end` of `head` into `out`.
bool parse_header_lines(std::string_view lines, const HeadLimits& limits, HeaderList* out,
                        ParseResult* err) {
  while (!lines.empty()) {
    size_t nl = lines.find('\n');
    std::string_view line = lines.substr(0, nl);
    lines.remove_prefix(nl == std::string_view::npos ? lines.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // the blank line that ends the head
    if (line.front() == ' ' || line.front() == '\t') {
      *err = error(400, "obsolete header line folding is not allowed");
      return false;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      *err = error(400, "header line without a colon");
      return false;
    }
    std::string_view name = line.substr(0, colon);
    if (!is_token(name)) {
      *err = error(400, "invalid header name \"" + std::string(name.substr(0, 64)) + "\"");
      return false;
    }
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (!is_field_value(value)) {
      *err = error(400, "header " + std::string(name) + " contains a control character");
      return false;
    }
    if (out->size() >= limits.max_headers) {
      *err = error(431, "more than " + std::to_string(limits.max_headers) + " headers");
      return false;
    }
    out->push_back({std::string(name), std::string(value)});
  }
  return true;
}

bool parse_version(std::string_view v, int* minor, ParseResult* err) {
  if (v.size() == 8 && v.substr(0, 5) == "HTTP/" && v[6] == '.' && v[5] >= '0' && v[5] <= '9' &&
      v[7] >= '0' && v[7] <= '9') {
    if (v[5] != '1') {
      *err = error(505, "HTTP version " + std::string(v.substr(5)) + " is not supported");
      return false;
    }
    // RFC 9112 2.6: a higher 1.x minor version is processed as the highest we implement, 1.1.
    // Kept as sent, "HTTP/1.2" would skip the checks that key on 1.1 (a required Host).
    *minor = v[7] == '0' ? 0 : 1;
    return true;
  }
  *err = error(400, "malformed HTTP version");
  return false;
}

// Parses a Content-Length field set: all values (comma lists included) must be the same
// decimal number, else the message length is ambiguous.
bool parse_content_length(const HeaderList& headers, bool* present, uint64_t* length,
                          std::string* message) {
  *present = false;
  for (const auto& h : headers) {
    if (!iequals(h.name, "Content-Length")) continue;
    std::string_view rest = h.value;
    while (true) {
      size_t comma = rest.find(',');
      std::string_view item = trim_ows(rest.substr(0, comma));
      uint64_t v = 0;
      auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
      if (item.empty() || ec != std::errc() || p != item.data() + item.size() || item[0] == '+') {
        *message = "invalid Content-Length \"" + h.value.substr(0, 32) + "\"";
        return false;
      }
      if (*present && v != *length) {
        *message = "conflicting Content-Length values";
        return false;
      }
      *present = true;
      *length = v;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return true;
}

// Collects the transfer codings of all Transfer-Encoding headers, in order.
std::vector<std::string> transfer_codings(const HeaderList& headers) {
  std::vector<std::string> codings;
  for (const auto& h : headers) {
    if (!iequals(h.name, "Transfer-Encoding")) continue;
    std::string_view rest = h.value;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = trim_ows(rest.substr(0, comma));
      if (!item.empty()) codings.emplace_back(item);
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
    }
  }
  return codings;
}

}  // namespace

const std::string* find_header(const HeaderList& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (iequals(h.name, name)) return &h.value;
  }
  return nullptr;
}

std::optional<std::string> header_value(const HeaderList& headers, std::string_view name) {
  const std::string* v = find_header(headers, name);
  return v ? std::optional<std::string>(*v) : std::nullopt;
}

bool is_event_stream(const HeaderList& headers) {
  const std::string* type = find_header(headers, "Content-Type");
  return type && ascii_istarts_with(*type, "text/event-stream");
}

bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (iequals(trim_ows(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

bool headers_have_token(const HeaderList& headers, std::string_view name, std::string_view token) {
  for (const auto& h : headers) {
    if (iequals(h.name, name) && has_token(h.value, token)) return true;
  }
  return false;
}

std::string_view RequestHead::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view RequestHead::query() const {
  std::string_view t = target;
  size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

ParseResult parse_request_head(std::string_view buf, const HeadLimits& limits, RequestHead* out) {
  // RFC 9112 §2.2: ignore empty lines received before the request line.
  size_t skipped = 0;
  while (buf.size() - skipped >= 2 && buf.substr(skipped, 2) == "\r\n") skipped += 2;
  std::string_view data = buf.substr(skipped);
  // The skipped empty lines count towards the head limit, else a client sending CRLFs
  // forever would grow the connection's buffer without bound.
  auto head_too_large = [&] {
    return error(431,
                 "request head larger than " + std::to_string(limits.max_head_bytes) + " bytes");
  };
  if (data.empty() || (data.size() == 1 && data[0] == '\r')) {
    if (buf.size() > limits.max_head_bytes) return head_too_large();
    return {};
  }

  size_t end = find_head_end(data, /*allow_bare_lf=*/false);
  if (end == std::string_view::npos) return error(400, "bare LF line ending (CRLF required)");
  // Length of the request line, or of what has arrived of it (a final CR may begin its CRLF).
  size_t line_end = data.find("\r\n");
  size_t line_len =
      line_end != std::string_view::npos ? line_end : data.size() - (data.back() == '\r');
  if (line_len > limits.max_request_line) {
    return error(414,
                 "request line longer than " + std::to_string(limits.max_request_line) + " bytes");
  }
  if (end == 0) {
    if (buf.size() > limits.max_head_bytes) return head_too_large();
    return {};
  }
  if (skipped + end > limits.max_head_bytes) return head_too_large();

  std::string_view line = data.substr(0, line_end);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return error(400, "malformed request line");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  ParseResult r;
  if (!is_token(method)) return error(400, "malformed request method");
  if (!parse_version(line.substr(sp2 + 1), &out->minor_version, &r)) return r;
  const bool connect = method == "CONNECT";
  if (connect && !limits.proxy_forms) {
    return error(501, "CONNECT is not supported by this reverse proxy");
  }
  if (target.empty() || !std::all_of(target.begin(), target.end(), [](char ch) {
        auto c = static_cast<unsigned char>(ch);
        return c > 0x20 && c < 0x7f;
      })) {
    return error(400, "malformed request target");
  }
  if (connect) {
    if (target.front() == '/' || target.find('/') != std::string_view::npos) {
      return error(400, "CONNECT target must be host:port");
    }
  } else if (target.front() != '/' && !(target == "*" && method == "OPTIONS")) {
    if (!limits.proxy_forms) {
      return error(400, "request target must be a path (origin-form) on a reverse proxy");
    }
    if (!ascii_istarts_with(target, "http://") && !ascii_istarts_with(target, "https://")) {
      return error(400, "request target must be a path or an absolute http(s):// URL");
    }
  }
  out->method.assign(method);
  out->target.assign(target);
  out->headers.clear();
  if (!parse_header_lines(data.substr(line_end + 2, end - line_end - 2), limits, &out->headers,
                          &r)) {
    return r;
  }
  int hosts = 0;
  for (const auto& h : out->headers) hosts += iequals(h.name, "Host");
  if (hosts > 1) return error(400, "more than one Host header");
  if (hosts == 0 && out->minor_version == 1 && !connect) return error(400, "missing Host header");
  r.state = ParseResult::State::kDone;
  r.consumed = skipped + end;
  return r;
}

ParseResult parse_response_head(std::string_view buf, const HeadLimits& limits, ResponseHead* out) {
  size_t end = find_head_end(buf, /*allow_bare_lf=*/true);
  if (end == 0) {
    if (buf.size() > limits.max_head_bytes) {
      return error(502, "upstream response head larger than " +
                            std::to_string(limits.max_head_bytes) + " bytes");
    }
    return {};
  }
  if (end > limits.max_head_bytes) {
    return error(502, "upstream response head larger than " +
                          std::to_string(limits.max_head_bytes) + " bytes");
  }
  size_t nl = buf.find('\n');
  std::string_view line = buf.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  ParseResult r;
  // "HTTP/1.1 200 OK" (the reason phrase may be empty or absent).
  if (line.size() < 12 || line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) {
    return error(502, "malformed upstream status line");
  }
  if (!parse_version(line.substr(0, 8), &out->minor_version, &r)) {
    return error(502, "upstream answered with an unsupported HTTP version");
  }
  int status = 0;
  auto [p, ec] = std::from_chars(line.data() + 9, line.data() + 12, status);
  if (ec != std::errc() || p != line.data() + 12 || status < 100 || status > 599) {
    return error(502, "malformed upstream status code");
  }
  std::string_view reason = line.size() > 13 ? line.substr(13) : std::string_view{};
  if (!is_field_value(reason)) return error(502, "control character in upstream reason phrase");
  out->status = status;
  out->reason.assign(reason);
  out->headers.clear();
  if (!parse_header_lines(buf.substr(nl + 1, end - nl - 1), limits, &out->headers, &r)) {
    return error(502, "upstream " + r.error);
  }
  r.state = ParseResult::State::kDone;
  r.consumed = end;
  return r;
}

FramingResult request_framing(const RequestHead& head) {
  FramingResult r;
  bool has_cl = false;
  uint64_t length = 0;
  std::string message;
  if (!parse_content_length(head.headers, &has_cl, &length, &message)) {
    r.error_status = 400;
    r.error = message;
    return r;
  }
  std::vector<std::string> codings = transfer_codings(head.headers);
  bool has_te = find_header(head.headers, "Transfer-Encoding") != nullptr;
  if (has_te) {
    if (has_cl) {
      r.error_status = 400;
      r.error = "both Content-Length and Transfer-Encoding are present";
      return r;
    }
    if (head.minor_version == 0) {
      r.error_status = 400;
      r.error = "Transfer-Encoding in an HTTP/1.0 request";
      return r;
    }
    if (codings.empty() || !iequals(codings.back(), "chunked")) {
      r.error_status = 400;
      r.error = "Transfer-Encoding must end in chunked";
      return r;
    }
    if (codings.size() > 1) {
      r.error_status = 501;
      r.error = "transfer coding \"" + codings.front() + "\" is not supported";
      return r;
    }
    r.framing.kind = BodyFraming::Kind::kChunked;
    return r;
  }
  if (has_cl) {
    r.framing.kind = BodyFraming::Kind::kLength;
    r.framing.length = length;
  }
  return r;
}

FramingResult response_framing(std::string_view request_method, const ResponseHead& head) {
  FramingResult r;
  if (request_method == "HEAD" || head.status < 200 || head.status == 204 || head.status == 304) {
    return r;
  }
  std::vector<std::string> codings = transfer_codings(head.headers);
  if (!codings.empty()) {
    // Only plain chunked can be passed on: after re-chunking, a transfer coding such as gzip
    // would reach the client unlabelled (Transfer-Encoding is hop-by-hop). LLM APIs use
    // Content-Encoding for compression, which passes through untouched.
    if (codings.size() != 1 || !iequals(codings.back(), "chunked")) {
      r.error_status = 502;
      r.error = "upstream used transfer coding \"" + codings.front() +
                "\", which the proxy cannot pass on";
      return r;
    }
    r.framing.kind = BodyFraming::Kind::kChunked;
    return r;
  }
  bool has_cl = false;
  uint64_t length = 0;
  std::string message;
  if (!parse_content_length(head.headers, &has_cl, &length, &message)) {
    r.error_status = 502;
    r.error = "upstream sent an " + message;
    return r;
  }
  if (has_cl) {
    r.framing.kind = BodyFraming::Kind::kLength;
    r.framing.length = length;
    return r;
  }
  r.framing.kind = BodyFraming::Kind::kUntilClose;
  return r;
}

size_t ChunkedDecoder::step(std::string_view in, std::string_view* data, Result* r) {
  constexpr size_t kMaxLine = 4096;
  constexpr size_t kMaxTrailers = 16 * 1024;
  auto fail = [&](const char* message) {
    r->error = true;
    r->message = message;
    return size_t{0};
  };
  if (state_ == State::kData) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
    *data = in.substr(0, n);
    remaining_ -= n;
    if (remaining_ == 0) state_ = State::kDataCr;
    return n;
  }
  char c = in[0];
  switch (state_) {
    case State::kSize: {
      int digit = -1;
      if (c >= '0' && c <= '9') digit = c - '0';
      if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') digit = (c | 0x20) - 'a' + 10;
      if (digit >= 0) {
        if (++size_digits_ > 15) return fail("chunk size too large");
        remaining_ = remaining_ * 16 + static_cast<uint64_t>(digit);
      } else if (size_digits_ == 0) {
        return fail("invalid chunk size");
      } else if (c == ';') {
        state_ = State::kSizeExt;
      } else if (c == ' ' || c == '\t') {
        state_ = State::kSizeWs;
      } else if (c == '\r') {
        state_ = State::kSizeLf;
      } else {
        return fail("invalid chunk size");
      }
      return 1;
    }
    case State::kSizeWs:
      // Only BWS may follow the size before ";" or CRLF: "5 6" is not a size of 5.
      if (++line_bytes_ > kMaxLine) return fail("chunk extension too long");
      if (c == ';') {
        state_ = State::kSizeExt;
      } else if (c == '\r') {
        state_ = State::kSizeLf;
      } else if (c != ' ' && c != '\t') {
        return fail("invalid chunk size");
      }
      return 1;
    case State::kSizeExt:
      if (++line_bytes_ > kMaxLine) return fail("chunk extension too long");
      if (c == '\r') {
        state_ = State::kSizeLf;
      } else if (c != '\t' && (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)) {
        return fail("control character in chunk extension");
      }
      return 1;
    case State::kSizeLf:
      if (c != '\n') return fail("chunk size line not terminated by CRLF");
      size_digits_ = 0;
      line_bytes_ = 0;
      state_ = remaining_ == 0 ? State::kTrailer : State::kData;
      trailer_line_empty_ = true;
      return 1;
    case State::kDataCr:
      if (c != '\r') return fail("chunk data not followed by CRLF");
      state_ = State::kDataLf;
      return 1;
    case State::kDataLf:
      if (c != '\n') return fail("chunk data not followed by CRLF");
      state_ = State::kSize;
      return 1;
    case State::kTrailer:
      // Trailer fields are read and dropped: they are hop-by-hop for this proxy.
      if (++trailer_bytes_ > kMaxTrailers) return fail("chunked trailer section too large");
      if (c == '\r') {
        state_ = State::kTrailerLf;
        return 1;
      }
      if (c == '\n' || (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
        return fail("invalid character in chunked trailer");
      }
      trailer_line_empty_ = false;
      return 1;
    case State::kTrailerLf:
      if (c != '\n') return fail("trailer line not terminated by CRLF");
      state_ = trailer_line_empty_ ? State::kDone : State::kTrailer;
      trailer_line_empty_ = true;
      return 1;
    case State::kData:
    case State::kDone:
      break;
  }
  return fail("chunked decoder in an impossible state");
}

void append_request_head(std::string* out, const RequestHead& head) {
  out->append(head.method).append(" ").append(head.target).append(" HTTP/1.");
  out->push_back(static_cast<char>('0' + head.minor_version));
  out->append("\r\n");
  for (const auto& h : head.headers)
    out->append(h.name).append(": ").append(h.value).append("\r\n");
  out->append("\r\n");
}

void append_response_head(std::string* out, const ResponseHead& head) {
  out->append("HTTP/1.");
  out->push_back(static_cast<char>('0' + head.minor_version));
  out->append(" ").append(std::to_string(head.status)).append(" ").append(head.reason);
  out->append("\r\n");
  for (const auto& h : head.headers)
    out->append(h.name).append(": ").append(h.value).append("\r\n");
  out->append("\r\n");
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

// --- stored heads ----------------------------------------------------------------------------

StoredHead parse_stored_head(std::string_view raw) {
  StoredHead head;
  bool first = true;
  while (!raw.empty()) {
    size_t nl = raw.find('\n');
    std::string_view line = raw.substr(0, nl);
    raw = nl == std::string_view::npos ? std::string_view() : raw.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (first) {
      head.start_line = std::string(line);
      first = false;
      continue;
    }
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    head.headers.push_back({std::string(trim_ows(line.substr(0, colon))),
                            std::string(trim_ows(line.substr(colon + 1)))});
  }
  return head;
}

std::optional<int> status_code(std::string_view line) {
  if (!line.starts_with("HTTP/")) return std::nullopt;
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp + 4 > line.size()) return std::nullopt;
  int code = 0;
  for (size_t i = sp + 1; i < sp + 4; ++i) {
    char c = line[i];
    if (c < '0' || c > '9') return std::nullopt;
    code = code * 10 + (c - '0');
  }
  if (sp + 4 < line.size() && line[sp + 4] != ' ') return std::nullopt;
  if (code < 100) return std::nullopt;
  return code;
}

std::string without_coding(std::string_view accept_encoding, std::string_view coding) {
  std::string out;
  while (!accept_encoding.empty()) {
    const size_t comma = accept_encoding.find(',');
    std::string_view element = trim_ows(accept_encoding.substr(0, comma));
    accept_encoding =
        comma == std::string_view::npos ? std::string_view() : accept_encoding.substr(comma + 1);
    const std::string_view name = trim_ows(element.substr(0, element.find(';')));
    if (element.empty() || iequals(name, coding)) continue;
    if (!out.empty()) out += ", ";
    out += element;
  }
  return out;
}

}  // namespace lp
