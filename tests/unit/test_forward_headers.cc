#include "proxy/forward_headers.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

using lp::BodyFraming;
using lp::HeaderList;
using Kind = BodyFraming::Kind;

std::string dump(const HeaderList& headers) {
  std::string s;
  for (const auto& h : headers) s.append(h.name).append(": ").append(h.value).append("\n");
  return s;
}

BodyFraming framing(Kind kind, uint64_t length = 0) {
  BodyFraming f;
  f.kind = kind;
  f.length = length;
  return f;
}

const lp::ForwardContext kCtx{"upstream.example:8443", "10.0.0.7", "http"};

TEST_CASE("is_hop_by_hop") {
  struct Row {
    const char* name;
    HeaderList headers;
    bool hop;
  };
  const HeaderList none;
  const std::vector<Row> rows = {
      {"Connection", none, true},
      {"connection", none, true},
      {"Keep-Alive", none, true},
      {"TE", none, true},
      {"te", none, true},
      {"Trailer", none, true},
      {"Transfer-Encoding", none, true},
      {"Upgrade", none, true},
      {"Proxy-Connection", none, true},
      {"Proxy-Authorization", none, true},
      {"proxy-authenticate", none, true},
      {"Host", none, false},
      {"Content-Length", none, false},
      {"Authorization", none, false},
      {"Trailers", none, false},
      {"Proxy", none, false},
      {"X-Foo", none, false},
      {"X-Foo", {{"Connection", "close, X-Foo"}}, true},
      {"x-foo", {{"Connection", "close, X-Foo"}}, true},
      {"X-Foo", {{"connection", " x-foo "}}, true},
      {"X-Foo", {{"Connection", "close"}, {"Connection", "X-Bar, X-Foo"}}, true},
      {"X-Foo", {{"Connection", "X-Foobar"}}, false},
      {"X-Foo", {{"X-Other", "X-Foo"}}, false},
  };
  for (const auto& row : rows) {
    INFO(std::string(row.name), " | ", dump(row.headers));
    CHECK(lp::is_hop_by_hop(row.name, row.headers) == row.hop);
  }
}

struct UpstreamRow {
  const char* name;
  HeaderList in;
  BodyFraming framing;
  std::string out;  // dump() of the expected upstream headers
};

TEST_CASE("upstream_request_headers table") {
  const std::string fwd = "Host: upstream.example:8443\nX-Forwarded-For: 10.0.0.7\n";
  const std::vector<UpstreamRow> rows = {
      {"minimal",
       {{"Host", "proxy.local"}},
       framing(Kind::kNone),
       fwd + "X-Forwarded-Host: proxy.local\nX-Forwarded-Proto: http\n"},
      {"no client Host (HTTP/1.0): no X-Forwarded-Host",
       {},
       framing(Kind::kNone),
       fwd + "X-Forwarded-Proto: http\n"},
      {"end-to-end headers kept in order with repeats and case",
       {{"Accept", "*/*"},
        {"Host", "proxy.local:8080"},
        {"authorization", "Bearer sk-abc%2Bdef%3D"},
        {"X-A", "1"},
        {"x-a", "2"},
        {"Content-Type", "application/json"}},
       framing(Kind::kNone),
       "Accept: */*\nauthorization: Bearer sk-abc%2Bdef%3D\nX-A: 1\nx-a: 2\n"
       "Content-Type: application/json\n" +
           fwd + "X-Forwarded-Host: proxy.local:8080\nX-Forwarded-Proto: http\n"},
      {"Connection-named headers dropped",
       {{"Host", "h"}, {"Connection", "close, X-Foo"}, {"X-Foo", "1"}, {"X-Bar", "2"}},
       framing(Kind::kNone),
       "X-Bar: 2\n" + fwd + "X-Forwarded-Host: h\nX-Forwarded-Proto: http\n"},
      {"Connection-named header listed before Connection",
       {{"Host", "h"}, {"x-foo", "1"}, {"Connection", "X-FOO"}, {"X-Keep", "k"}},
       framing(Kind::kNone),
       "X-Keep: k\n" + fwd + "X-Forwarded-Host: h\nX-Forwarded-Proto: http\n"},
      {"fixed hop-by-hop headers dropped",
       {{"Host", "h"},
        {"Connection", "keep-alive"},
        {"Keep-Alive", "timeout=5"},
        {"TE", "trailers"},
        {"Trailer", "X-Checksum"},
        {"Upgrade", "websocket"},
        {"Transfer-Encoding", "chunked"},
        {"Proxy-Authorization", "Basic abc"},
        {"Proxy-Connection", "keep-alive"},
        {"X-End", "e"}},
       framing(Kind::kChunked),
       "X-End: e\n" + fwd +
           "X-Forwarded-Host: h\nX-Forwarded-Proto: http\nTransfer-Encoding: chunked\n"},
      {"Content-Length replaced by the framing",
       {{"Host", "h"}, {"Content-Length", "12"}, {"Content-Type", "application/json"}},
       framing(Kind::kLength, 12),
       "Content-Type: application/json\n" + fwd +
           "X-Forwarded-Host: h\nX-Forwarded-Proto: http\nContent-Length: 12\n"},
      {"Content-Length 0 kept as 0",
       {{"Host", "h"}, {"Content-Length", "0"}},
       framing(Kind::kLength, 0),
       fwd + "X-Forwarded-Host: h\nX-Forwarded-Proto: http\nContent-Length: 0\n"},
      {"Content-Length list normalised",
       {{"Host", "h"}, {"Content-Length", "5, 5"}},
       framing(Kind::kLength, 5),
       fwd + "X-Forwarded-Host: h\nX-Forwarded-Proto: http\nContent-Length: 5\n"},
      {"chunked request",
       {{"Host", "h"}, {"Transfer-Encoding", "Chunked"}},
       framing(Kind::kChunked),
       fwd + "X-Forwarded-Host: h\nX-Forwarded-Proto: http\nTransfer-Encoding: chunked\n"},
      {"no body: no framing header",
       {{"Host", "h"}, {"content-length", "3"}},
       framing(Kind::kNone),
       fwd + "X-Forwarded-Host: h\nX-Forwarded-Proto: http\n"},
      {"Expect dropped",
       {{"Host", "h"}, {"Expect", "100-continue"}, {"Content-Length", "3"}},
       framing(Kind::kLength, 3),
       fwd + "X-Forwarded-Host: h\nX-Forwarded-Proto: http\nContent-Length: 3\n"},
      {"X-Forwarded-For appended to the existing one",
       {{"X-Forwarded-For", "203.0.113.9"}, {"Host", "h"}},
       framing(Kind::kNone),
       "Host: upstream.example:8443\nX-Forwarded-For: 203.0.113.9, 10.0.0.7\n"
       "X-Forwarded-Host: h\nX-Forwarded-Proto: http\n"},
      {"two X-Forwarded-For headers merged in order",
       {{"X-Forwarded-For", "1.1.1.1, 2.2.2.2"}, {"Host", "h"}, {"x-forwarded-for", "3.3.3.3"}},
       framing(Kind::kNone),
       "Host: upstream.example:8443\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.7\n"
       "X-Forwarded-Host: h\nX-Forwarded-Proto: http\n"},
      {"client X-Forwarded-Host and -Proto replaced",
       {{"Host", "mine"}, {"X-Forwarded-Host", "evil"}, {"X-Forwarded-Proto", "https"}},
       framing(Kind::kNone),
       fwd + "X-Forwarded-Host: mine\nX-Forwarded-Proto: http\n"},
      {"lowercase host is the client's Host",
       {{"host", "Lower.Case:81"}},
       framing(Kind::kNone),
       fwd + "X-Forwarded-Host: Lower.Case:81\nX-Forwarded-Proto: http\n"},
  };
  for (const auto& row : rows) {
    INFO(std::string(row.name), "\nin:\n", dump(row.in));
    HeaderList out = lp::upstream_request_headers(row.in, kCtx, row.framing);
    CHECK(dump(out) == row.out);
  }
}

TEST_CASE("upstream_request_headers: exactly one Host, the upstream's") {
  HeaderList out =
      lp::upstream_request_headers({{"Host", "client"}, {"X", "y"}}, kCtx, framing(Kind::kNone));
  int hosts = 0;
  for (const auto& h : out) {
    if (lp::iequals(h.name, "Host")) {
      ++hosts;
      CHECK(h.value == "upstream.example:8443");
    }
  }
  CHECK(hosts == 1);
}

struct DownstreamRow {
  const char* name;
  HeaderList in;
  BodyFraming framing;
  std::string out;
};

TEST_CASE("downstream_response_headers table") {
  const std::vector<DownstreamRow> rows = {
      {"Content-Length re-added for a length body",
       {{"Content-Type", "text/plain"}, {"Content-Length", "5"}, {"X-A", "1"}},
       framing(Kind::kLength, 5),
       "Content-Type: text/plain\nX-A: 1\nContent-Length: 5\n"},
      {"Content-Length list normalised",
       {{"Content-Length", "5,5"}},
       framing(Kind::kLength, 5),
       "Content-Length: 5\n"},
      {"Content-Length 0",
       {{"content-length", "0"}},
       framing(Kind::kLength, 0),
       "Content-Length: 0\n"},
      {"chunked from upstream stays chunked",
       {{"Content-Type", "text/event-stream"}, {"Transfer-Encoding", "chunked"}},
       framing(Kind::kChunked),
       "Content-Type: text/event-stream\nTransfer-Encoding: chunked\n"},
      {"length body re-chunked for the client",
       {{"Content-Length", "5"}, {"X", "y"}},
       framing(Kind::kChunked),
       "X: y\nTransfer-Encoding: chunked\n"},
      {"close-delimited: no framing header",
       {{"Content-Type", "a/b"}, {"Content-Length", "9"}},
       framing(Kind::kUntilClose),
       "Content-Type: a/b\n"},
      {"HEAD/304: upstream Content-Length kept",
       {{"ETag", "\"x\""}, {"Content-Length", "1234"}},
       framing(Kind::kNone),
       "ETag: \"x\"\nContent-Length: 1234\n"},
      {"hop-by-hop dropped",
       {{"Connection", "keep-alive, X-Hop"},
        {"Keep-Alive", "timeout=5"},
        {"X-Hop", "1"},
        {"Transfer-Encoding", "chunked"},
        {"Trailer", "X-Sum"},
        {"Upgrade", "h2c"},
        {"Proxy-Authenticate", "Basic"},
        {"Proxy-Connection", "close"},
        {"Date", "today"}},
       framing(Kind::kChunked),
       "Date: today\nTransfer-Encoding: chunked\n"},
      {"Set-Cookie repeats kept in order",
       {{"Set-Cookie", "a=1; Path=/"},
        {"Content-Length", "2"},
        {"set-cookie", "b=2"},
        {"Set-Cookie", "c=3, d=4"}},
       framing(Kind::kLength, 2),
       "Set-Cookie: a=1; Path=/\nset-cookie: b=2\nSet-Cookie: c=3, d=4\nContent-Length: 2\n"},
      {"interim response (kNone): nothing added",
       {{"Link", "</a>"}},
       framing(Kind::kNone),
       "Link: </a>\n"},
  };
  for (const auto& row : rows) {
    INFO(std::string(row.name), "\nin:\n", dump(row.in));
    CHECK(dump(lp::downstream_response_headers(row.in, row.framing)) == row.out);
  }
}

}  // namespace
