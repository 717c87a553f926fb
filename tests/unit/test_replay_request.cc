// Rebuilding captured requests for replay, and --header parsing.
#include <doctest/doctest.h>

#include <algorithm>

#include "proxy/replay_request.h"

namespace lp {
namespace {

const char* kStored =
    "POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
    "User-Agent: sdk/1.0\r\n"
    "Authorization: Bearer ****wxyz\r\n"
    "X-Api-Key: ****\r\n"
    "Content-Type: application/json\r\n"
    "X-Multi: a\r\n"
    "X-Multi: b\r\n"
    "Host: api.example.com\r\n"
    "Content-Length: 2\r\n"
    "X-Forwarded-For: 127.0.0.1\r\n"
    "X-Forwarded-Host: localhost:5601\r\n"
    "X-Forwarded-Proto: http\r\n"
    "X-Proxy-Path: /openai/v1/chat/completions?x=1\r\n"
    "\r\n"
    "{}";

ReplayOptions options() {
  ReplayOptions o;
  o.original_id = "0123abcd-0000-4000-8000-000000000000";
  o.proxy_authority = "127.0.0.1:5601";
  o.redacted_names = {"Authorization", "X-Api-Key"};
  return o;
}

std::vector<std::string> lines(const HeaderList& h) {
  std::vector<std::string> out;
  for (const auto& x : h) out.push_back(x.name + ": " + x.value);
  return out;
}

TEST_CASE("replay goes to X-Proxy-Path with the capture's headers minus per-hop and masked ones") {
  std::string error;
  auto r = build_replay_request(kStored, options(), &error);
  REQUIRE_MESSAGE(r, error);
  CHECK(r->head.method == "POST");
  CHECK(r->head.target == "/openai/v1/chat/completions?x=1");
  CHECK(r->body == "{}");
  CHECK(lines(r->head.headers) ==
        std::vector<std::string>{"User-Agent: sdk/1.0", "Content-Type: application/json",
                                 "X-Multi: a", "X-Multi: b", "Host: 127.0.0.1:5601",
                                 "Content-Length: 2",
                                 "X-Replay-Of: 0123abcd-0000-4000-8000-000000000000"});
}

TEST_CASE("--header values replace same-named headers and re-supply masked credentials") {
  ReplayOptions o = options();
  o.overrides = {{"Authorization", "Bearer sk-real"}, {"user-agent", "replayer"}};
  std::string error;
  auto r = build_replay_request(kStored, o, &error);
  REQUIRE(r);
  auto l = lines(r->head.headers);
  CHECK(std::count(l.begin(), l.end(), "Authorization: Bearer sk-real") == 1);
  CHECK(std::count(l.begin(), l.end(), "user-agent: replayer") == 1);
  CHECK(std::count(l.begin(), l.end(), "User-Agent: sdk/1.0") == 0);
}

TEST_CASE("an unmasked credential (redaction was off) is re-sent as stored") {
  std::string stored =
      "GET /v1/models HTTP/1.1\r\nAuthorization: Bearer sk-plain\r\nHost: h\r\n"
      "X-Proxy-Path: /api/v1/models\r\n\r\n";
  std::string error;
  auto r = build_replay_request(stored, options(), &error);
  REQUIRE(r);
  auto l = lines(r->head.headers);
  CHECK(std::count(l.begin(), l.end(), "Authorization: Bearer sk-plain") == 1);
  // GET without a body: no Content-Length.
  CHECK(std::none_of(l.begin(), l.end(), [](auto& s) { return s.starts_with("Content-Length"); }));
}

TEST_CASE("malformed stored requests are refused with a reason") {
  struct Row {
    std::string stored;
    const char* error;
  };
  const Row rows[] = {
      {"", "no complete HTTP head"},
      {"GET / HTTP/1.1\r\nHost: h\r\n", "no complete HTTP head"},
      {"GET / HTTP/1.1\nHost: h\n\n", "malformed"},
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "no valid X-Proxy-Path"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-Proxy-Path: relative\r\n\r\n", "no valid X-Proxy-Path"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-Proxy-Path:\r\n\r\n", "no valid X-Proxy-Path"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.stored);
    std::string error;
    CHECK_FALSE(build_replay_request(row.stored, options(), &error));
    CHECK(error.find(row.error) != std::string::npos);
  }
}

TEST_CASE("parse_header_arg accepts 'Name: value' and nothing else") {
  CHECK(parse_header_arg("Authorization: Bearer x")->value == "Bearer x");
  CHECK(parse_header_arg("X-A:b")->value == "b");
  CHECK(parse_header_arg("X-A:  padded  ")->value == "padded");
  CHECK(parse_header_arg("X-Empty:")->value.empty());
  CHECK_FALSE(parse_header_arg("no colon"));
  CHECK_FALSE(parse_header_arg(": value"));
  CHECK_FALSE(parse_header_arg("Bad Name: v"));
  CHECK_FALSE(parse_header_arg("X-A: a\r\nX-B: b"));
  CHECK_FALSE(parse_header_arg("Host: elsewhere"));  // the proxy's Host is set by replay
}

}  // namespace
}  // namespace lp
