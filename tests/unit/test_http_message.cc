#include "common/http_message.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::string_literals;
using lp::BodyFraming;
using lp::ChunkedDecoder;
using lp::HeaderList;
using lp::HeadLimits;
using lp::ParseResult;
using lp::RequestHead;
using lp::ResponseHead;
using State = ParseResult::State;
using Kind = BodyFraming::Kind;

// Headers as "name: value\n" lines: byte-exact and readable in failure messages.
std::string dump(const HeaderList& headers) {
  std::string s;
  for (const auto& h : headers) s.append(h.name).append(": ").append(h.value).append("\n");
  return s;
}

// Control bytes made visible in failure messages.
std::string visible(std::string_view s) {
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c >= 0x7f) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

std::string state_name(State s) {
  switch (s) {
    case State::kIncomplete:
      return "incomplete";
    case State::kDone:
      return "done";
    case State::kError:
      return "error";
  }
  return "?";
}

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::kNone:
      return "none";
    case Kind::kLength:
      return "length";
    case Kind::kChunked:
      return "chunked";
    case Kind::kUntilClose:
      return "until-close";
  }
  return "?";
}

HeadLimits limits(size_t head, size_t line, size_t count) {
  HeadLimits l;
  l.max_head_bytes = head;
  l.max_request_line = line;
  l.max_headers = count;
  return l;
}

// ---------------------------------------------------------------------------------------
// parse_request_head

struct RequestRow {
  const char* name;
  std::string head;  // bytes of the head; kDone must consume exactly these
  State state;
  int status = 0;  // kError
  std::string method = "";
  std::string target = "";
  int minor = 1;
  std::string headers = "";  // dump() of the expected headers
  std::string tail = "";     // bytes after the head, left unconsumed
  HeadLimits limits = {};
};

std::vector<RequestRow> request_rows() {
  const HeadLimits d;
  return {
      // --- valid ---
      {"simple GET", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", State::kDone, 0, "GET", "/", 1,
       "Host: example.com\n"},
      {"POST with body after the head",
       "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\n"
       "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n",
       State::kDone, 0, "POST", "/v1/chat/completions", 1,
       "Host: a\nContent-Type: application/json\nContent-Length: 2\n", "{}"},
      {"order, case and repeats preserved",
       "GET /x HTTP/1.1\r\nhost: h\r\nX-A: 1\r\nACCEPT: */*\r\nx-a: 2\r\nX-A: 3\r\n\r\n",
       State::kDone, 0, "GET", "/x", 1, "host: h\nX-A: 1\nACCEPT: */*\nx-a: 2\nX-A: 3\n"},
      {"value OWS trimmed, inner whitespace kept",
       "GET / HTTP/1.1\r\nHost:a\r\nX-V: \t v  a\tl \t \r\n\r\n", State::kDone, 0, "GET", "/", 1,
       "Host: a\nX-V: v  a\tl\n"},
      {"empty values", "GET / HTTP/1.1\r\nHost: a\r\nX-E:\r\nX-F:   \r\n\r\n", State::kDone, 0,
       "GET", "/", 1, "Host: a\nX-E: \nX-F: \n"},
      {"percent sequences not decoded",
       "GET /v1/a%2Fb?q=%20x&r=%3D HTTP/1.1\r\nHost: a\r\n"
       "Authorization: Bearer sk-abc%2Bdef%3D\r\n\r\n",
       State::kDone, 0, "GET", "/v1/a%2Fb?q=%20x&r=%3D", 1,
       "Host: a\nAuthorization: Bearer sk-abc%2Bdef%3D\n"},
      {"colons inside the value", "GET / HTTP/1.1\r\nHost: a:8080\r\nX-T: a:b: c\r\n\r\n",
       State::kDone, 0, "GET", "/", 1, "Host: a:8080\nX-T: a:b: c\n"},
      {"obs-text in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-U: caf\xc3\xa9\r\n\r\n", State::kDone,
       0, "GET", "/", 1, "Host: a\nX-U: caf\xc3\xa9\n"},
      {"leading CRLFs skipped", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", State::kDone, 0, "GET",
       "/", 1, "Host: a\n"},
      {"pipelined request left unconsumed", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", State::kDone, 0,
       "GET", "/1", 1, "Host: a\n", "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"HTTP/1.0 without Host", "GET /old HTTP/1.0\r\n\r\n", State::kDone, 0, "GET", "/old", 0, ""},
      {"HTTP/1.0 with Host", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", State::kDone, 0, "GET", "/", 0,
       "Host: a\n"},
      {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", State::kDone, 0, "OPTIONS", "*", 1,
       "Host: a\n"},
      {"extension method", "PROPFIND /d HTTP/1.1\r\nHost: a\r\n\r\n", State::kDone, 0, "PROPFIND",
       "/d", 1, "Host: a\n"},
      {"empty Host on HTTP/1.1", "GET / HTTP/1.1\r\nHost:\r\n\r\n", State::kDone, 0, "GET", "/", 1,
       "Host: \n"},
      {"tchar punctuation in names", "GET / HTTP/1.1\r\nHost: a\r\nX!#$%&'*+-.^_`|~9: v\r\n\r\n",
       State::kDone, 0, "GET", "/", 1, "Host: a\nX!#$%&'*+-.^_`|~9: v\n"},
      {"body bytes with bare LF after the head",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n", State::kDone, 0, "POST", "/", 1,
       "Host: a\nContent-Length: 4\n", "a\nb\n"},
      // --- incomplete ---
      {"empty buffer", "", State::kIncomplete},
      {"lone CR", "\r", State::kIncomplete},
      {"CRLF only", "\r\n", State::kIncomplete},
      {"no blank line yet", "GET / HTTP/1.1\r\nHost: a\r\n", State::kIncomplete},
      {"blank line half there", "GET / HTTP/1.1\r\nHost: a\r\n\r", State::kIncomplete},
      // --- line endings and folding ---
      {"bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", State::kError, 400},
      {"bare LF after header", "GET / HTTP/1.1\r\nHost: a\n\r\n", State::kError, 400},
      {"bare LF as the blank line", "GET / HTTP/1.1\r\nHost: a\r\n\n", State::kError, 400},
      {"bare LF before request line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", State::kError, 400},
      {"bare LF while incomplete", "GET / HTTP/1.1\r\nX: a\n", State::kError, 400},
      {"obs-fold with space", "GET / HTTP/1.1\r\nHost: a\r\nX-F: one\r\n two\r\n\r\n",
       State::kError, 400},
      {"obs-fold with tab", "GET / HTTP/1.1\r\nHost: a\r\nX-F: one\r\n\ttwo\r\n\r\n", State::kError,
       400},
      {"obs-fold on first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", State::kError, 400},
      // --- header syntax ---
      {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", State::kError, 400},
      {"tab before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\t: 1\r\n\r\n", State::kError, 400},
      {"no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", State::kError, 400},
      {"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", State::kError, 400},
      {"non-token name", "GET / HTTP/1.1\r\nHost: a\r\nX@Y: v\r\n\r\n", State::kError, 400},
      {"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"s, State::kError, 400},
      {"CR alone in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", State::kError, 400},
      {"CR at the end of a value", "GET / HTTP/1.1\r\nHost: a\r\nX: ab\r\r\n\r\n", State::kError,
       400},
      {"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", State::kError, 400},
      {"SOH in value", "GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", State::kError, 400},
      {"NUL in name", "GET / HTTP/1.1\r\nHost: a\r\nX\0Y: 1\r\n\r\n"s, State::kError, 400},
      // --- Host ---
      {"missing Host on HTTP/1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", State::kError, 400},
      {"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", State::kError, 400},
      {"two identical Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", State::kError,
       400},
      {"two Host headers on HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
       State::kError, 400},
      // --- versions ---
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", State::kError, 505},
      {"HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", State::kError, 505},
      {"lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", State::kError, 400},
      {"version without minor", "GET / HTTP/1\r\nHost: a\r\n\r\n", State::kError, 400},
      {"version with two-digit minor", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", State::kError, 400},
      {"garbage version", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", State::kError, 400},
      {"version with letters", "GET / HTTP/a.b\r\nHost: a\r\n\r\n", State::kError, 400},
      // --- request line ---
      {"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
       State::kError, 501},
      {"absolute-form target", "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
       State::kError, 400},
      {"authority-form target on GET", "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n",
       State::kError, 400},
      {"asterisk on GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", State::kError, 400},
      {"missing version", "GET /\r\nHost: a\r\n\r\n", State::kError, 400},
      {"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", State::kError, 400},
      {"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", State::kError, 400},
      {"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", State::kError, 400},
      {"tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", State::kError, 400},
      {"empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", State::kError, 400},
      {"non-token method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", State::kError, 400},
      {"DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", State::kError, 400},
      {"CR in target", "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", State::kError, 400},
      {"non-ASCII in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", State::kError, 400},
      // --- limits ---
      {"request line at the limit",
       "GET /0123456789 HTTP/1.1\r\nHost: a\r\n\r\n",  // request line: 24 bytes
       State::kDone, 0, "GET", "/0123456789", 1, "Host: a\n", "",
       limits(d.max_head_bytes, 24, d.max_headers)},
      {"request line one over the limit", "GET /01234567890 HTTP/1.1\r\nHost: a\r\n\r\n",
       State::kError, 414, "", "", 1, "", "", limits(d.max_head_bytes, 24, d.max_headers)},
      {"request line too long before its CRLF", "GET /0123456789012345678901234567890",
       State::kError, 414, "", "", 1, "", "", limits(d.max_head_bytes, 24, d.max_headers)},
      {"request line too long, head not complete", "GET /01234567890 HTTP/1.1\r\nHost: a\r\n",
       State::kError, 414, "", "", 1, "", "", limits(d.max_head_bytes, 24, d.max_headers)},
      {"head at the limit", "GET / HTTP/1.1\r\nHost: a\r\nX: 12345\r\n\r\n",  // 37 bytes
       State::kDone, 0, "GET", "/", 1, "Host: a\nX: 12345\n", "",
       limits(37, d.max_request_line, d.max_headers)},
      {"head one over the limit", "GET / HTTP/1.1\r\nHost: a\r\nX: 123456\r\n\r\n", State::kError,
       431, "", "", 1, "", "", limits(37, d.max_request_line, d.max_headers)},
      {"head too big before its end", "GET / HTTP/1.1\r\nHost: a\r\nX: 123456789012345\r\n",
       State::kError, 431, "", "", 1, "", "", limits(37, d.max_request_line, d.max_headers)},
      {"CRs before the request line", std::string(8, '\r') + "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
       State::kError, 400},
      {"leading CRLFs count towards the head limit",
       [] {
         std::string s;
         for (int i = 0; i < 100; ++i) s += "\r\n";
         return s;
       }(),
       State::kError, 431, "", "", 1, "", "", limits(64, 32, 10)},
      {"headers at the count limit", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n",
       State::kDone, 0, "GET", "/", 1, "Host: a\nA: 1\nB: 2\n", "",
       limits(d.max_head_bytes, d.max_request_line, 3)},
      {"too many headers", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
       State::kError, 431, "", "", 1, "", "", limits(d.max_head_bytes, d.max_request_line, 3)},
  };
}

TEST_CASE("parse_request_head table") {
  for (const auto& row : request_rows()) {
    INFO(std::string(row.name), " | ", visible(row.head + row.tail));
    RequestHead head;
    ParseResult r = lp::parse_request_head(row.head + row.tail, row.limits, &head);
    CHECK(state_name(r.state) == state_name(row.state));
    if (row.state == State::kError) {
      CHECK(r.error_status == row.status);
      CHECK(!r.error.empty());
    } else if (row.state == State::kDone) {
      CHECK(r.consumed == row.head.size());
      CHECK(head.method == row.method);
      CHECK(head.target == row.target);
      CHECK(head.minor_version == row.minor);
      CHECK(dump(head.headers) == row.headers);
    }
  }
}

// Every proper prefix of a valid head is incomplete; the whole head is done, also with more
// bytes after it. Limits set exactly to the head's sizes must not reject any prefix.
TEST_CASE("parse_request_head with the forward proxy's request forms") {
  struct Row {
    const char* name;
    std::string head;
    int status;  // 0: parsed
    std::string target;
  };
  const std::vector<Row> rows = {
      {"CONNECT host:port",
       "CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n", 0,
       "api.openai.com:443"},
      {"CONNECT without Host", "CONNECT 127.0.0.1:8443 HTTP/1.1\r\n\r\n", 0, "127.0.0.1:8443"},
      {"CONNECT to an IPv6 literal", "CONNECT [::1]:443 HTTP/1.1\r\n\r\n", 0, "[::1]:443"},
      {"CONNECT with a path", "CONNECT /x HTTP/1.1\r\n\r\n", 400, ""},
      {"CONNECT with a URL", "CONNECT http://a:80/ HTTP/1.1\r\n\r\n", 400, ""},
      {"CONNECT with CR in the target", "CONNECT a\r:443 HTTP/1.1\r\n\r\n", 400, ""},
      {"absolute-form http",
       "GET http://example.com/v1/x?k=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", 0,
       "http://example.com/v1/x?k=1"},
      {"absolute-form scheme in capitals", "GET HTTP://example.com/ HTTP/1.1\r\nHost: e\r\n\r\n", 0,
       "HTTP://example.com/"},
      {"absolute-form https", "GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 0,
       "https://example.com/"},
      {"absolute-form other scheme", "GET ftp://example.com/ HTTP/1.1\r\nHost: e\r\n\r\n", 400, ""},
      {"absolute-form still needs Host", "GET http://example.com/ HTTP/1.1\r\n\r\n", 400, ""},
      {"origin-form still parsed", "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, "/x"},
  };
  HeadLimits limits;
  limits.proxy_forms = true;
  for (const Row& row : rows) {
    INFO(row.name);
    RequestHead head;
    ParseResult r = lp::parse_request_head(row.head, limits, &head);
    if (row.status == 0) {
      CHECK(state_name(r.state) == state_name(State::kDone));
      CHECK(head.target == row.target);
    } else {
      CHECK(state_name(r.state) == state_name(State::kError));
      CHECK(r.error_status == row.status);
    }
  }
}

TEST_CASE("parse_request_head at every split point") {
  const std::vector<std::string> heads = {
      "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "POST /v1/chat/completions?stream=1 HTTP/1.1\r\nHost: api.example.com\r\n"
      "Content-Type: application/json\r\nAuthorization: Bearer sk-abc%2Bdef%3D\r\n"
      "Content-Length: 17\r\n\r\n",
      "\r\n\r\nGET /x HTTP/1.0\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-A:  1 \r\n\r\n",
  };
  for (const auto& full : heads) {
    RequestHead expected;
    ParseResult whole = lp::parse_request_head(full, HeadLimits{}, &expected);
    REQUIRE(whole.state == State::kDone);
    REQUIRE(whole.consumed == full.size());
    size_t skipped = full.find_first_not_of("\r\n");
    size_t line = full.find("\r\n", skipped) - skipped;
    HeadLimits tight = limits(full.size(), line, expected.headers.size());
    for (const HeadLimits& lim : {HeadLimits{}, tight}) {
      for (size_t n = 0; n <= full.size(); ++n) {
        INFO(visible(full), " | prefix ", n, " | max_head ", lim.max_head_bytes, " max_line ",
             lim.max_request_line);
        RequestHead head;
        ParseResult r = lp::parse_request_head(std::string_view(full).substr(0, n), lim, &head);
        if (n < full.size()) {
          CHECK(state_name(r.state) == std::string("incomplete"));
          CHECK(r.consumed == 0);
        } else {
          REQUIRE(state_name(r.state) == std::string("done"));
          CHECK(r.consumed == full.size());
          CHECK(head.method == expected.method);
          CHECK(head.target == expected.target);
          CHECK(dump(head.headers) == dump(expected.headers));
        }
      }
      // Bytes after the head (the body, a pipelined request) are not consumed.
      for (const char* tail : {"x", "{\"a\":1}", "GET / HTTP/1.1\r\n", "\n\n\0"}) {
        RequestHead head;
        ParseResult r = lp::parse_request_head(full + tail, lim, &head);
        CHECK(r.state == State::kDone);
        CHECK(r.consumed == full.size());
      }
    }
  }
}

TEST_CASE("RequestHead path and query") {
  struct Row {
    const char* target;
    const char* path;
    const char* query;
  };
  const Row rows[] = {
      {"/", "/", ""},    {"/a/b", "/a/b", ""},    {"/a?x=1&y=2", "/a", "x=1&y=2"},
      {"/a?", "/a", ""}, {"/a?b?c", "/a", "b?c"}, {"/a%3Fb?q=%3F", "/a%3Fb", "q=%3F"},
      {"*", "*", ""},
  };
  for (const auto& row : rows) {
    INFO(std::string(row.target));
    RequestHead h;
    h.target = row.target;
    CHECK(h.path() == row.path);
    CHECK(h.query() == row.query);
  }
}

TEST_CASE("header helpers") {
  HeaderList h = {
      {"Connection", "keep-alive, Upgrade"}, {"X-A", "1"}, {"x-a", "2"}, {"Connection", " close "}};
  CHECK(lp::iequals("Content-Length", "content-LENGTH"));
  CHECK_FALSE(lp::iequals("Content-Length", "Content-Lengt"));
  CHECK_FALSE(lp::iequals("a", "A "));
  REQUIRE(lp::find_header(h, "X-A") != nullptr);
  CHECK(*lp::find_header(h, "x-A") == "1");
  CHECK(lp::find_header(h, "X-B") == nullptr);
  CHECK(lp::has_token("keep-alive, Upgrade", "upgrade"));
  CHECK(lp::has_token(" a ,\tb\t, c", "b"));
  CHECK_FALSE(lp::has_token("keep-alive-x", "keep-alive"));
  CHECK_FALSE(lp::has_token("", "close"));
  CHECK_FALSE(lp::has_token("closed", "close"));
  CHECK(lp::headers_have_token(h, "connection", "CLOSE"));
  CHECK(lp::headers_have_token(h, "Connection", "upgrade"));
  CHECK_FALSE(lp::headers_have_token(h, "X-A", "3"));
}

TEST_CASE("is_event_stream table") {
  const std::vector<std::pair<HeaderList, bool>> rows = {
      {{{"Content-Type", "text/event-stream"}}, true},
      {{{"content-type", "Text/Event-Stream; charset=utf-8"}}, true},
      {{{"X-A", "1"}, {"Content-Type", "text/event-stream;charset=utf-8"}}, true},
      {{{"Content-Type", "application/json"}}, false},
      {{{"Content-Type", "text/event"}}, false},
      {{{"Content-Type", " text/event-stream"}}, false},  // values arrive trimmed
      {{{"X-Content-Type", "text/event-stream"}}, false},
      {{}, false},
  };
  for (const auto& [headers, expected] : rows) {
    const std::string shown =
        headers.empty() ? std::string("(none)") : headers.back().name + ": " + headers.back().value;
    INFO(shown);
    CHECK(lp::is_event_stream(headers) == expected);
  }
}

// ---------------------------------------------------------------------------------------
// request_framing

struct FramingRow {
  const char* name;
  HeaderList headers;
  int minor = 1;
  Kind kind = Kind::kNone;
  uint64_t length = 0;
  int status = 0;  // non-zero: the expected error status
};

TEST_CASE("request_framing table") {
  const std::vector<FramingRow> rows = {
      {"no framing headers", {{"Host", "a"}}, 1, Kind::kNone},
      {"no framing, HTTP/1.0", {}, 0, Kind::kNone},
      {"Content-Length", {{"Content-Length", "10"}}, 1, Kind::kLength, 10},
      {"Content-Length 0", {{"Content-Length", "0"}}, 1, Kind::kLength, 0},
      {"lowercase name", {{"content-length", "3"}}, 1, Kind::kLength, 3},
      {"leading zeros", {{"Content-Length", "007"}}, 1, Kind::kLength, 7},
      {"Content-Length on HTTP/1.0", {{"Content-Length", "5"}}, 0, Kind::kLength, 5},
      {"OWS around the value", {{"Content-Length", " \t5 "}}, 1, Kind::kLength, 5},
      {"large but valid",
       {{"Content-Length", "1099511627776"}},
       1,
       Kind::kLength,
       1099511627776ull},
      {"two equal Content-Length",
       {{"Content-Length", "5"}, {"Content-Length", "5"}},
       1,
       Kind::kLength,
       5},
      {"two differing Content-Length",
       {{"Content-Length", "5"}, {"Content-Length", "6"}},
       1,
       Kind::kNone,
       0,
       400},
      {"list 1,1", {{"Content-Length", "1,1"}}, 1, Kind::kLength, 1},
      {"list 1, 1", {{"Content-Length", "1, 1"}}, 1, Kind::kLength, 1},
      {"list 1,2", {{"Content-Length", "1,2"}}, 1, Kind::kNone, 0, 400},
      {"list equal to a second header",
       {{"Content-Length", "2,2"}, {"Content-Length", "3"}},
       1,
       Kind::kNone,
       0,
       400},
      {"empty list element", {{"Content-Length", "1,,1"}}, 1, Kind::kNone, 0, 400},
      {"plus sign", {{"Content-Length", "+5"}}, 1, Kind::kNone, 0, 400},
      {"negative", {{"Content-Length", "-1"}}, 1, Kind::kNone, 0, 400},
      {"letters", {{"Content-Length", "abc"}}, 1, Kind::kNone, 0, 400},
      {"digits then letters", {{"Content-Length", "5abc"}}, 1, Kind::kNone, 0, 400},
      {"hex", {{"Content-Length", "0x10"}}, 1, Kind::kNone, 0, 400},
      {"inner space", {{"Content-Length", "5 5"}}, 1, Kind::kNone, 0, 400},
      {"empty", {{"Content-Length", ""}}, 1, Kind::kNone, 0, 400},
      {"decimal point", {{"Content-Length", "5.0"}}, 1, Kind::kNone, 0, 400},
      {"20 digits (overflow)",
       {{"Content-Length", "99999999999999999999"}},
       1,
       Kind::kNone,
       0,
       400},
      {"2^64 (overflow)", {{"Content-Length", "18446744073709551616"}}, 1, Kind::kNone, 0, 400},
      {"chunked", {{"Transfer-Encoding", "chunked"}}, 1, Kind::kChunked},
      {"Chunked", {{"Transfer-Encoding", "Chunked"}}, 1, Kind::kChunked},
      {"CHUNKED with OWS", {{"Transfer-Encoding", " CHUNKED "}}, 1, Kind::kChunked},
      {"CL and TE",
       {{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}},
       1,
       Kind::kNone,
       0,
       400},
      {"TE and CL",
       {{"Transfer-Encoding", "chunked"}, {"Content-Length", "0"}},
       1,
       Kind::kNone,
       0,
       400},
      {"gzip, chunked", {{"Transfer-Encoding", "gzip, chunked"}}, 1, Kind::kNone, 0, 501},
      {"gzip then chunked in two headers",
       {{"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked"}},
       1,
       Kind::kNone,
       0,
       501},
      {"chunked, gzip", {{"Transfer-Encoding", "chunked, gzip"}}, 1, Kind::kNone, 0, 400},
      {"chunked then gzip in two headers",
       {{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "gzip"}},
       1,
       Kind::kNone,
       0,
       400},
      {"gzip alone", {{"Transfer-Encoding", "gzip"}}, 1, Kind::kNone, 0, 400},
      {"empty Transfer-Encoding", {{"Transfer-Encoding", ""}}, 1, Kind::kNone, 0, 400},
      {"chunked with a parameter", {{"Transfer-Encoding", "chunked;q=1"}}, 1, Kind::kNone, 0, 400},
      {"TE on HTTP/1.0", {{"Transfer-Encoding", "chunked"}}, 0, Kind::kNone, 0, 400},
      {"invalid CL with TE",
       {{"Content-Length", "x"}, {"Transfer-Encoding", "chunked"}},
       1,
       Kind::kNone,
       0,
       400},
  };
  for (const auto& row : rows) {
    INFO(std::string(row.name), " | ", dump(row.headers));
    RequestHead head;
    head.method = "POST";
    head.target = "/";
    head.minor_version = row.minor;
    head.headers = row.headers;
    lp::FramingResult r = lp::request_framing(head);
    CHECK(r.error_status == row.status);
    if (row.status == 0) {
      CHECK(kind_name(r.framing.kind) == kind_name(row.kind));
      CHECK(r.framing.length == row.length);
      CHECK(r.error.empty());
    } else {
      CHECK(!r.error.empty());
    }
  }
}

// The parser and the framing together: OWS is trimmed before the number is read.
TEST_CASE("request_framing after parsing") {
  RequestHead head;
  REQUIRE(lp::parse_request_head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  5 \r\n\r\n",
                                 HeadLimits{}, &head)
              .state == State::kDone);
  lp::FramingResult r = lp::request_framing(head);
  CHECK(r.error_status == 0);
  CHECK(r.framing.kind == Kind::kLength);
  CHECK(r.framing.length == 5);
}

// ---------------------------------------------------------------------------------------
// response_framing

struct ResponseFramingRow {
  const char* name;
  const char* method;
  int status;
  HeaderList headers;
  Kind kind = Kind::kNone;
  uint64_t length = 0;
  int error = 0;
};

TEST_CASE("response_framing table") {
  const std::vector<ResponseFramingRow> rows = {
      {"HEAD with Content-Length", "HEAD", 200, {{"Content-Length", "10"}}, Kind::kNone},
      {"HEAD with chunked", "HEAD", 200, {{"Transfer-Encoding", "chunked"}}, Kind::kNone},
      {"HEAD with an invalid Content-Length", "HEAD", 200, {{"Content-Length", "x"}}, Kind::kNone},
      {"100", "GET", 100, {}, Kind::kNone},
      {"103 with a Content-Length", "GET", 103, {{"Content-Length", "5"}}, Kind::kNone},
      {"204 with a Content-Length", "GET", 204, {{"Content-Length", "5"}}, Kind::kNone},
      {"304 with a Content-Length", "GET", 304, {{"Content-Length", "5"}}, Kind::kNone},
      {"304 chunked", "GET", 304, {{"Transfer-Encoding", "chunked"}}, Kind::kNone},
      {"chunked", "POST", 200, {{"Transfer-Encoding", "chunked"}}, Kind::kChunked},
      {"Chunked", "GET", 200, {{"transfer-encoding", "Chunked"}}, Kind::kChunked},
      {"chunked overrides Content-Length",
       "GET",
       200,
       {{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}},
       Kind::kChunked},
      {"gzip, chunked cannot be passed on",
       "GET",
       200,
       {{"Transfer-Encoding", "gzip, chunked"}},
       Kind::kNone,
       0,
       502},
      {"chunked, gzip cannot be passed on",
       "GET",
       200,
       {{"Transfer-Encoding", "chunked, gzip"}},
       Kind::kNone,
       0,
       502},
      {"gzip alone cannot be passed on",
       "GET",
       200,
       {{"Transfer-Encoding", "gzip"}},
       Kind::kNone,
       0,
       502},
      {"Content-Length", "GET", 200, {{"Content-Length", "5"}}, Kind::kLength, 5},
      {"Content-Length 0", "GET", 200, {{"Content-Length", "0"}}, Kind::kLength, 0},
      {"Content-Length on a 404", "GET", 404, {{"Content-Length", "9"}}, Kind::kLength, 9},
      {"Content-Length on a 201", "POST", 201, {{"Content-Length", "2"}}, Kind::kLength, 2},
      {"equal Content-Lengths", "GET", 200, {{"Content-Length", "3, 3"}}, Kind::kLength, 3},
      {"no framing: until close", "GET", 200, {{"Content-Type", "text/plain"}}, Kind::kUntilClose},
      {"no framing on POST: until close", "POST", 500, {}, Kind::kUntilClose},
      {"invalid Content-Length", "GET", 200, {{"Content-Length", "abc"}}, Kind::kNone, 0, 502},
      {"negative Content-Length", "GET", 200, {{"Content-Length", "-1"}}, Kind::kNone, 0, 502},
      {"conflicting Content-Length",
       "GET",
       200,
       {{"Content-Length", "3"}, {"Content-Length", "4"}},
       Kind::kNone,
       0,
       502},
      {"overflowing Content-Length",
       "GET",
       200,
       {{"Content-Length", "99999999999999999999"}},
       Kind::kNone,
       0,
       502},
  };
  for (const auto& row : rows) {
    INFO(std::string(row.name), " | ", std::string(row.method), " ", row.status, " | ",
         dump(row.headers));
    ResponseHead head;
    head.status = row.status;
    head.headers = row.headers;
    lp::FramingResult r = lp::response_framing(row.method, head);
    CHECK(r.error_status == row.error);
    if (row.error == 0) {
      CHECK(kind_name(r.framing.kind) == kind_name(row.kind));
      CHECK(r.framing.length == row.length);
    }
  }
}

// ---------------------------------------------------------------------------------------
// ChunkedDecoder

struct ChunkRow {
  const char* name;
  std::string body;  // the chunked body
  std::string data;  // decoded data (valid rows)
  bool error = false;
  std::string tail = "";  // bytes after the body, not to be consumed
};

std::vector<ChunkRow> chunk_rows() {
  return {
      {"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"},
      {"empty body", "0\r\n\r\n", ""},
      {"several chunks", "3\r\nabc\r\n4\r\ndefg\r\n1\r\nh\r\n0\r\n\r\n", "abcdefgh"},
      {"uppercase hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789"},
      {"lowercase hex", "b\r\n0123456789a\r\n0\r\n\r\n", "0123456789a"},
      {"two hex digits", "1F\r\n" + std::string(31, 'x') + "\r\n0\r\n\r\n", std::string(31, 'x')},
      {"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello"},
      {"15 hex digits", "000000000000005\r\nhello\r\n0\r\n\r\n", "hello"},
      {"CRLF inside data", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"},
      {"binary data", "3\r\n\0\xff\n\r\n0\r\n\r\n"s, "\0\xff\n"s},
      {"extensions ignored", "5;foo=bar\r\nhello\r\n0;last\r\n\r\n", "hello"},
      {"extension with BWS", "5 ;foo\r\nhello\r\n0\t;x=1\r\n\r\n", "hello"},
      {"quoted extension", "5;a=\"b c\"\r\nhello\r\n0\r\n\r\n", "hello"},
      {"trailers consumed", "5\r\nhello\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n", "hello"},
      {"pipelined bytes not consumed", "5\r\nhello\r\n0\r\n\r\n", "hello", false,
       "GET / HTTP/1.1\r\n\r\n"},
      {"bytes after trailers not consumed", "0\r\nX: y\r\n\r\n", "", false, "0\r\n\r\n"},
      // --- errors ---
      {"non-hex size", "x\r\nhello\r\n0\r\n\r\n", "", true},
      {"hex then garbage", "5x\r\nhello\r\n0\r\n\r\n", "", true},
      {"empty size", "\r\nhello\r\n0\r\n\r\n", "", true},
      {"leading space", " 5\r\nhello\r\n0\r\n\r\n", "", true},
      {"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", "", true},
      {"plus sign", "+5\r\nhello\r\n0\r\n\r\n", "", true},
      {"negative size", "-5\r\nhello\r\n0\r\n\r\n", "", true},
      {"digits after whitespace", "5 6\r\nhello\r\n0\r\n\r\n", "", true},
      {"missing CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n", "", true},
      {"CR without LF after data", "5\r\nhello\rX0\r\n\r\n", "", true},
      {"data longer than the size", "3\r\nhello\r\n0\r\n\r\n", "", true},
      {"LF only after the size", "5\nhello\r\n0\r\n\r\n", "", true},
      {"LF only after data", "5\r\nhello\n0\r\n\r\n", "", true},
      {"LF only after the last chunk", "0\n\r\n", "", true},
      {"LF only as the final line", "0\r\n\n", "", true},
      {"LF only after a trailer", "0\r\nX: 1\n\r\n", "", true},
      {"CR CR after the size", "5\r\rhello\r\n0\r\n\r\n", "", true},
      {"16 hex digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", "", true},
      {"size overflow", "ffffffffffffffff1\r\n", "", true},
      {"CTL in extension", "5;a\x01z\r\nhello\r\n0\r\n\r\n", "", true},
      {"NUL in extension", "5;a\0z\r\nhello\r\n0\r\n\r\n"s, "", true},
      {"DEL in extension", "5;a\x7f\r\nhello\r\n0\r\n\r\n", "", true},
      {"LF in extension", "5;a\nhello\r\n0\r\n\r\n", "", true},
      {"extension too long", "5;" + std::string(5000, 'a') + "\r\nhello\r\n0\r\n\r\n", "", true},
      {"bare CR in trailer", "0\r\nX: a\rb\r\n\r\n", "", true},
      {"CTL in trailer", "0\r\nX: a\x01\r\n\r\n", "", true},
      {"oversized trailers", "0\r\nX: " + std::string(17000, 'a') + "\r\n\r\n", "", true},
      {"many trailer lines",
       [] {
         std::string s = "0\r\n";
         for (int i = 0; i < 3000; ++i) s += "X-Trailer: 1\r\n";
         return s + "\r\n";
       }(),
       "", true},
  };
}

struct DecodeOutcome {
  std::string data;
  size_t consumed = 0;
  bool error = false;
  bool done = false;
};

// Feeds `in` in pieces of `step` bytes (0: whole), stopping at the first error; the caller
// re-feeds unconsumed bytes the way BodyReader does (it keeps them as the leftover).
DecodeOutcome decode(const std::string& in, size_t step) {
  DecodeOutcome o;
  ChunkedDecoder d;
  size_t pos = 0;
  while (pos < in.size() && !d.done()) {
    size_t n = step == 0 ? in.size() - pos : std::min(step, in.size() - pos);
    auto r = d.feed(std::string_view(in).substr(pos, n), [&](std::string_view piece) {
      CHECK(!piece.empty());
      o.data.append(piece);
    });
    if (r.error) {
      CHECK(!r.message.empty());
      o.error = true;
      break;
    }
    CHECK(r.consumed <= n);
    if (!d.done()) CHECK(r.consumed == n);  // nothing is held back mid-body
    pos += r.consumed;
  }
  o.consumed = pos;
  o.done = d.done();
  return o;
}

TEST_CASE("ChunkedDecoder table: whole, byte by byte, and in pieces") {
  for (const auto& row : chunk_rows()) {
    const std::string in = row.body + row.tail;
    for (size_t step : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{7}}) {
      INFO(std::string(row.name), " | step ", step, " | ", visible(in.substr(0, 200)));
      DecodeOutcome o = decode(in, step);
      CHECK(o.error == row.error);
      if (!row.error) {
        CHECK(o.done);
        CHECK(visible(o.data) == visible(row.data));
        CHECK(o.consumed == row.body.size());
      } else {
        CHECK_FALSE(o.done);
      }
    }
  }
}

TEST_CASE("ChunkedDecoder: every two-piece split gives the same result") {
  for (const auto& row : chunk_rows()) {
    const std::string in = row.body + row.tail;
    if (in.size() > 200) continue;
    for (size_t cut = 0; cut <= in.size(); ++cut) {
      INFO(std::string(row.name), " | cut ", cut);
      ChunkedDecoder d;
      std::string out;
      auto sink = [&](std::string_view p) { out.append(p); };
      auto r1 = d.feed(std::string_view(in).substr(0, cut), sink);
      bool error = r1.error;
      size_t consumed = r1.consumed;
      if (!error && !d.done()) {
        CHECK(r1.consumed == cut);
        auto r2 = d.feed(std::string_view(in).substr(cut), sink);
        error = r2.error;
        consumed += r2.consumed;
      }
      CHECK(error == row.error);
      if (!row.error) {
        CHECK(d.done());
        CHECK(visible(out) == visible(row.data));
        CHECK(consumed == row.body.size());
      }
    }
  }
}

TEST_CASE("ChunkedDecoder: incomplete bodies are not done, and done consumes nothing more") {
  const std::string body = "5\r\nhello\r\n0\r\nX: 1\r\n\r\n";
  for (size_t n = 0; n < body.size(); ++n) {
    INFO("prefix ", n);
    ChunkedDecoder d;
    std::string out;
    auto r = d.feed(std::string_view(body).substr(0, n), [&](std::string_view p) { out += p; });
    CHECK_FALSE(r.error);
    CHECK(r.consumed == n);
    CHECK_FALSE(d.done());
    CHECK(out == std::string("hello").substr(0, n < 3 ? 0 : std::min<size_t>(n - 3, 5)));
  }
  ChunkedDecoder d;
  auto r = d.feed(body + "more", [](std::string_view) {});
  CHECK(d.done());
  CHECK(r.consumed == body.size());
  int calls = 0;
  auto again = d.feed("5\r\nhello\r\n", [&](std::string_view) { ++calls; });
  CHECK(again.consumed == 0);
  CHECK_FALSE(again.error);
  CHECK(calls == 0);
}

TEST_CASE("ChunkedDecoder: a large chunk streams in pieces") {
  const std::string data(100000, 'z');
  const std::string body = "186a0\r\n" + data + "\r\n0\r\n\r\n";
  for (size_t step : {size_t{1000}, size_t{65536}, size_t{0}}) {
    DecodeOutcome o = decode(body, step);
    CHECK_FALSE(o.error);
    CHECK(o.done);
    CHECK(o.data == data);
    CHECK(o.consumed == body.size());
  }
}

// ---------------------------------------------------------------------------------------
// parse_response_head

struct ResponseRow {
  const char* name;
  std::string head;
  State state;
  int status = 0;  // kDone: the parsed status; kError: the error status (502)
  std::string reason = "";
  int minor = 1;
  std::string headers = "";
  std::string tail = "";
  HeadLimits limits = {};
};

std::vector<ResponseRow> response_rows() {
  const HeadLimits d;
  return {
      {"200 OK", "HTTP/1.1 200 OK\r\n\r\n", State::kDone, 200, "OK"},
      {"headers preserved",
       "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nSet-Cookie: a=1\r\n"
       "set-cookie: b=2\r\nX-E:\r\nX-V:  v \r\n\r\n",
       State::kDone, 200, "OK", 1,
       "Content-Type: text/event-stream\nSet-Cookie: a=1\nset-cookie: b=2\nX-E: \nX-V: v\n"},
      {"no reason", "HTTP/1.1 204\r\nDate: x\r\n\r\n", State::kDone, 204, "", 1, "Date: x\n"},
      {"empty reason", "HTTP/1.1 404 \r\n\r\n", State::kDone, 404, ""},
      {"reason with spaces", "HTTP/1.1 500 Internal Server Error\r\n\r\n", State::kDone, 500,
       "Internal Server Error"},
      {"reason with obs-text", "HTTP/1.1 200 D\xc3\xa9j\xc3\xa0\r\n\r\n", State::kDone, 200,
       "D\xc3\xa9j\xc3\xa0"},
      {"HTTP/1.0", "HTTP/1.0 200 OK\r\n\r\n", State::kDone, 200, "OK", 0},
      {"100 Continue", "HTTP/1.1 100 Continue\r\n\r\n", State::kDone, 100, "Continue"},
      {"599", "HTTP/1.1 599 X\r\n\r\n", State::kDone, 599, "X"},
      {"bare LF tolerated", "HTTP/1.1 200 OK\nX: 1\n\n", State::kDone, 200, "OK", 1, "X: 1\n"},
      {"mixed line endings", "HTTP/1.1 200 OK\r\nX: 1\nY: 2\r\n\n", State::kDone, 200, "OK", 1,
       "X: 1\nY: 2\n"},
      {"body left unconsumed", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", State::kDone, 200,
       "OK", 1, "Content-Length: 5\n", "hello"},
      {"interim response then final", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
       State::kDone, 103, "Early Hints", 1, "Link: </a>\n", "HTTP/1.1 200 OK\r\n\r\n"},
      {"empty", "", State::kIncomplete},
      {"status line only", "HTTP/1.1 200 OK\r\n", State::kIncomplete},
      {"no blank line yet", "HTTP/1.1 200 OK\r\nX: 1\r\n\r", State::kIncomplete},
      {"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", State::kError, 502},
      {"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", State::kError, 502},
      {"letters in status", "HTTP/1.1 2x0 OK\r\n\r\n", State::kError, 502},
      {"signed status", "HTTP/1.1 +20 OK\r\n\r\n", State::kError, 502},
      {"status below 100", "HTTP/1.1 099 X\r\n\r\n", State::kError, 502},
      {"status above 599", "HTTP/1.1 600 X\r\n\r\n", State::kError, 502},
      {"missing status", "HTTP/1.1\r\n\r\n", State::kError, 502},
      {"double space", "HTTP/1.1  200 OK\r\n\r\n", State::kError, 502},
      {"no space after status", "HTTP/1.1 200OK\r\n\r\n", State::kError, 502},
      {"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", State::kError, 502},
      {"lowercase protocol", "http/1.1 200 OK\r\n\r\n", State::kError, 502},
      {"not HTTP", "ICY 200 OK\r\n\r\n", State::kError, 502},
      {"empty status line", "\r\n\r\n", State::kError, 502},
      {"CR in reason", "HTTP/1.1 200 O\rK\r\n\r\n", State::kError, 502},
      {"NUL in reason", "HTTP/1.1 200 O\0K\r\n\r\n"s, State::kError, 502},
      {"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", State::kError, 502},
      {"space before colon", "HTTP/1.1 200 OK\r\nX : a\r\n\r\n", State::kError, 502},
      {"no colon", "HTTP/1.1 200 OK\r\nX\r\n\r\n", State::kError, 502},
      {"NUL in value", "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"s, State::kError, 502},
      {"CR in value", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", State::kError, 502},
      {"DEL in value", "HTTP/1.1 200 OK\r\nX: \x7f\r\n\r\n", State::kError, 502},
      {"too many headers", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", State::kError, 502,
       "", 1, "", "", limits(d.max_head_bytes, d.max_request_line, 2)},
      {"head too big", "HTTP/1.1 200 OK\r\nX: 0123456789\r\n\r\n", State::kError, 502, "", 1, "",
       "", limits(20, d.max_request_line, d.max_headers)},
      {"head too big before its end", "HTTP/1.1 200 OK\r\nX: 0123456789\r\n", State::kError, 502,
       "", 1, "", "", limits(20, d.max_request_line, d.max_headers)},
  };
}

TEST_CASE("parse_response_head table") {
  for (const auto& row : response_rows()) {
    INFO(std::string(row.name), " | ", visible(row.head + row.tail));
    ResponseHead head;
    ParseResult r = lp::parse_response_head(row.head + row.tail, row.limits, &head);
    CHECK(state_name(r.state) == state_name(row.state));
    if (row.state == State::kError) {
      CHECK(r.error_status == row.status);
      CHECK(!r.error.empty());
    } else if (row.state == State::kDone) {
      CHECK(r.consumed == row.head.size());
      CHECK(head.status == row.status);
      CHECK(head.reason == row.reason);
      CHECK(head.minor_version == row.minor);
      CHECK(dump(head.headers) == row.headers);
    }
  }
}

TEST_CASE("parse_response_head at every split point") {
  const std::string full =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (size_t n = 0; n <= full.size(); ++n) {
    INFO("prefix ", n);
    ResponseHead head;
    HeadLimits lim = limits(full.size(), 16, 2);
    ParseResult r = lp::parse_response_head(std::string_view(full).substr(0, n), lim, &head);
    if (n < full.size()) {
      CHECK(r.state == State::kIncomplete);
    } else {
      REQUIRE(r.state == State::kDone);
      CHECK(r.consumed == full.size());
      CHECK(head.headers.size() == 2);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Serialisation

TEST_CASE("append_request_head: exact bytes and round trip") {
  RequestHead h;
  h.method = "POST";
  h.target = "/v1/chat/completions?x=%2B";
  h.minor_version = 1;
  h.headers = {{"Host", "api.example.com"},
               {"authorization", "Bearer sk-abc%2Bdef%3D"},
               {"X-A", "1"},
               {"x-a", "2"},
               {"X-Empty", ""}};
  std::string out = "prefix|";
  lp::append_request_head(&out, h);
  const std::string expected =
      "POST /v1/chat/completions?x=%2B HTTP/1.1\r\nHost: api.example.com\r\n"
      "authorization: Bearer sk-abc%2Bdef%3D\r\nX-A: 1\r\nx-a: 2\r\nX-Empty: \r\n\r\n";
  CHECK(out == "prefix|" + expected);

  RequestHead back;
  ParseResult r = lp::parse_request_head(expected, HeadLimits{}, &back);
  REQUIRE(r.state == State::kDone);
  CHECK(r.consumed == expected.size());
  CHECK(back.method == h.method);
  CHECK(back.target == h.target);
  CHECK(back.minor_version == 1);
  CHECK(dump(back.headers) == dump(h.headers));

  // Parse then serialise reproduces canonical input byte for byte.
  for (const std::string raw : {"GET / HTTP/1.0\r\n\r\n", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
                                "DELETE /x?y HTTP/1.1\r\nhost: h:1\r\nA: b c\r\n\r\n"}) {
    RequestHead p;
    REQUIRE(lp::parse_request_head(raw, HeadLimits{}, &p).state == State::kDone);
    std::string again;
    lp::append_request_head(&again, p);
    CHECK(visible(again) == visible(raw));
  }
}

TEST_CASE("append_response_head: exact bytes and round trip") {
  struct Row {
    int minor;
    int status;
    const char* reason;
    HeaderList headers;
    const char* bytes;
  };
  const Row rows[] = {
      {1,
       200,
       "OK",
       {{"Content-Type", "text/plain"}, {"Content-Length", "5"}},
       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"},
      {1, 404, "", {}, "HTTP/1.1 404 \r\n\r\n"},
      {0,
       500,
       "Internal Server Error",
       {{"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}},
       "HTTP/1.0 500 Internal Server Error\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"},
      {1,
       103,
       "Early Hints",
       {{"Link", "</a>; rel=preload"}},
       "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"},
  };
  for (const auto& row : rows) {
    INFO(visible(row.bytes));
    ResponseHead h;
    h.minor_version = row.minor;
    h.status = row.status;
    h.reason = row.reason;
    h.headers = row.headers;
    std::string out;
    lp::append_response_head(&out, h);
    CHECK(visible(out) == visible(row.bytes));
    ResponseHead back;
    ParseResult r = lp::parse_response_head(out, HeadLimits{}, &back);
    REQUIRE(r.state == State::kDone);
    CHECK(r.consumed == out.size());
    CHECK(back.minor_version == row.minor);
    CHECK(back.status == row.status);
    CHECK(back.reason == row.reason);
    CHECK(dump(back.headers) == dump(row.headers));
  }
}

TEST_CASE("reason_phrase") {
  CHECK(lp::reason_phrase(200) == "OK");
  CHECK(lp::reason_phrase(400) == "Bad Request");
  CHECK(lp::reason_phrase(414) == "URI Too Long");
  CHECK(lp::reason_phrase(431) == "Request Header Fields Too Large");
  CHECK(lp::reason_phrase(501) == "Not Implemented");
  CHECK(lp::reason_phrase(502) == "Bad Gateway");
  CHECK(lp::reason_phrase(505) == "HTTP Version Not Supported");
  CHECK(lp::reason_phrase(299) == "Unknown");
}

}  // namespace

TEST_CASE("stored heads parse leniently") {
  using lp::header_value;
  using lp::parse_stored_head;
  using lp::status_code;
  lp::StoredHead h = parse_stored_head(
      "POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Type:  application/json \r\nX-Dup: 1\r\n"
      "x-dup: 2\r\nno colon line\r\n\r\nbody: not a header\r\n");
  CHECK(h.start_line == "POST /v1/chat HTTP/1.1");
  REQUIRE(h.headers.size() == 4);
  CHECK(h.headers[1].name == "Content-Type");
  CHECK(h.headers[1].value == "application/json");
  CHECK(header_value(h.headers, "content-type") == "application/json");
  CHECK(header_value(h.headers, "X-DUP") == "1");
  CHECK_FALSE(header_value(h.headers, "Missing").has_value());

  lp::StoredHead lf = parse_stored_head("HTTP/1.1 200 OK\nContent-Encoding: gzip\n\n");
  CHECK(lf.start_line == "HTTP/1.1 200 OK");
  CHECK(header_value(lf.headers, "Content-Encoding") == "gzip");
  CHECK(parse_stored_head("").start_line.empty());

  CHECK(status_code("HTTP/1.1 200 OK") == 200);
  CHECK(status_code("HTTP/1.1 404") == 404);
  CHECK(status_code("HTTP/2 503 Service Unavailable") == 503);
  CHECK_FALSE(status_code("GET / HTTP/1.1").has_value());
  CHECK_FALSE(status_code("HTTP/1.1 20 OK").has_value());
  CHECK_FALSE(status_code("HTTP/1.1 2000 OK").has_value());
  CHECK_FALSE(status_code("HTTP/1.1 abc OK").has_value());
}

TEST_CASE("without_coding drops one coding from Accept-Encoding, parameters and all") {
  struct Row {
    const char* in;
    const char* out;
  };
  const Row rows[] = {
      {"gzip, deflate, br", "gzip, deflate"},
      {"br", ""},
      {"BR;q=1.0, gzip;q=0.8", "gzip;q=0.8"},
      {"gzip,br,zstd", "gzip, zstd"},
      {" br ; q=0.5 ,  identity ", "identity"},
      {"brotli, gzip", "brotli, gzip"},  // not "br"
      {"gzip", "gzip"},
      {"", ""},
      {",, br,,gzip,", "gzip"},
  };
  for (const Row& r : rows) {
    CAPTURE(r.in);
    CHECK(lp::without_coding(r.in, "br") == r.out);
  }
}
