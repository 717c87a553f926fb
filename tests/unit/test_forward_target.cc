// Forward-proxy targets: CONNECT authorities and absolute-form URLs, good and bad, table-driven.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "proxy/forward_target.h"

using lp::parse_absolute_target;
using lp::parse_connect_target;

// 253 characters: the longest DNS name (labels of at most 63).
const std::string kLongest = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                             std::string(63, 'c') + "." + std::string(61, 'd');

TEST_CASE("parse_connect_target table") {
  struct Row {
    std::string target;
    bool ok;
    std::string host;
    int port;
    std::string error;  // a part of the message when refused
  };
  const std::vector<Row> rows = {
      {"api.openai.com:443", true, "api.openai.com", 443, ""},
      {"API.OpenAI.com:443", true, "api.openai.com", 443, ""},
      {"127.0.0.1:8443", true, "127.0.0.1", 8443, ""},
      {"[::1]:443", true, "::1", 443, ""},
      {"[2001:DB8::1]:1", true, "2001:db8::1", 1, ""},
      {"under_score.example:65535", true, "under_score.example", 65535, ""},
      {"api.openai.com", false, "", 0, "must name a port"},
      {"api.openai.com:", false, "", 0, "empty port"},
      {"api.openai.com:0", false, "", 0, "out of range"},
      {"api.openai.com:65536", false, "", 0, "out of range"},
      {"api.openai.com:443x", false, "", 0, "not a number"},
      {"api.openai.com:+443", false, "", 0, "not a number"},
      {":443", false, "", 0, "empty host"},
      {"a..b:443", false, "", 0, "not a DNS name"},
      {".a:443", false, "", 0, "not a DNS name"},
      {"user@host:443", false, "", 0, "userinfo"},
      {"ho$t:443", false, "", 0, "not a DNS name"},
      {"[::1:443", false, "", 0, "unterminated"},
      {"[zz::1]:443", false, "", 0, "malformed IPv6"},
      {"[::1]x:443", false, "", 0, "junk after"},
      {kLongest + "d:443", false, "", 0, "not a DNS name"},
      {std::string(64, 'a') + ".example:443", false, "", 0, "not a DNS name"},
      {kLongest + ":443", true, kLongest, 443, ""},
  };
  for (const Row& row : rows) {
    INFO(row.target);
    std::string error;
    auto t = parse_connect_target(row.target, &error);
    REQUIRE(t.has_value() == row.ok);
    if (row.ok) {
      CHECK(t->host == row.host);
      CHECK(t->port == row.port);
      CHECK(t->tls);
    } else {
      CHECK(error.find(row.error) != std::string::npos);
      CHECK(error.find("user@") == std::string::npos);
    }
  }
  std::string error;
  CHECK(parse_connect_target("[::1]:8443", &error)->authority() == "[::1]:8443");
  CHECK(parse_connect_target("a.example:443", &error)->origin() == "https://a.example");
  CHECK(parse_connect_target("a.example:8443", &error)->origin() == "https://a.example:8443");
}

TEST_CASE("parse_absolute_target table") {
  struct Row {
    std::string target;
    bool ok;
    std::string origin;
    std::string origin_form;
  };
  const std::vector<Row> rows = {
      {"http://example.com/v1/x?k=1", true, "http://example.com", "/v1/x?k=1"},
      {"HTTP://Example.COM:8080/", true, "http://example.com:8080", "/"},
      {"http://example.com", true, "http://example.com", "/"},
      {"http://example.com?q=1", true, "http://example.com", "/?q=1"},
      {"https://api.openai.com/v1/chat/completions", true, "https://api.openai.com",
       "/v1/chat/completions"},
      {"https://127.0.0.1:9443/x", true, "https://127.0.0.1:9443", "/x"},
      {"http://[::1]:81/x", true, "http://[::1]:81", "/x"},
      {"ftp://example.com/", false, "", ""},
      {"http://", false, "", ""},
      {"http://u:p@example.com/", false, "", ""},
      {"http://example.com/#frag", false, "", ""},
      {"http://example.com:0/", false, "", ""},
      {"http://exa mple.com/", false, "", ""},
  };
  for (const Row& row : rows) {
    INFO(row.target);
    std::string error;
    auto t = parse_absolute_target(row.target, &error);
    REQUIRE(t.has_value() == row.ok);
    if (row.ok) {
      CHECK(t->origin() == row.origin);
      CHECK(t->origin_form == row.origin_form);
    } else {
      CHECK(!error.empty());
      CHECK(error.find("u:p") == std::string::npos);
    }
  }
}
