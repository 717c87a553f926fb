#include "common/url.h"

#include <doctest/doctest.h>

#include <string>

namespace {

struct GoodUrl {
  const char* text;
  const char* scheme;
  const char* host;
  uint16_t port;
  const char* path;
  const char* query;
  const char* authority;
  const char* origin;
  const char* to_string;
};

// Normalisation matters because origin() keys the connection pool and authority() becomes the
// Host header: equivalent spellings must produce the same values.
const GoodUrl kGoodUrls[] = {
    {"https://openrouter.ai/", "https", "openrouter.ai", 443, "/", "", "openrouter.ai",
     "https://openrouter.ai", "https://openrouter.ai/"},
    {"http://127.0.0.1:1234/", "http", "127.0.0.1", 1234, "/", "", "127.0.0.1:1234",
     "http://127.0.0.1:1234", "http://127.0.0.1:1234/"},
    {"http://localhost:8080", "http", "localhost", 8080, "/", "", "localhost:8080",
     "http://localhost:8080", "http://localhost:8080/"},
    {"https://openrouter.ai/api/v1/", "https", "openrouter.ai", 443, "/api/v1/", "",
     "openrouter.ai", "https://openrouter.ai", "https://openrouter.ai/api/v1/"},
    {"HTTPS://OpenRouter.AI/Api", "https", "openrouter.ai", 443, "/Api", "", "openrouter.ai",
     "https://openrouter.ai", "https://openrouter.ai/Api"},
    {"http://example.com:80/x", "http", "example.com", 80, "/x", "", "example.com",
     "http://example.com", "http://example.com/x"},
    {"https://example.com:443", "https", "example.com", 443, "/", "", "example.com",
     "https://example.com", "https://example.com/"},
    {"http://example.com:443/", "http", "example.com", 443, "/", "", "example.com:443",
     "http://example.com:443", "http://example.com:443/"},
    {"https://example.com:80/", "https", "example.com", 80, "/", "", "example.com:80",
     "https://example.com:80", "https://example.com:80/"},
    {"http://example.com/a?b=1&c=2", "http", "example.com", 80, "/a", "b=1&c=2", "example.com",
     "http://example.com", "http://example.com/a?b=1&c=2"},
    {"http://example.com?q", "http", "example.com", 80, "/", "q", "example.com",
     "http://example.com", "http://example.com/?q"},
    {"http://example.com/?", "http", "example.com", 80, "/", "", "example.com",
     "http://example.com", "http://example.com/"},
    {"http://[::1]:8080/v1", "http", "::1", 8080, "/v1", "", "[::1]:8080", "http://[::1]:8080",
     "http://[::1]:8080/v1"},
    {"https://[2001:DB8::1]/", "https", "2001:db8::1", 443, "/", "", "[2001:db8::1]",
     "https://[2001:db8::1]", "https://[2001:db8::1]/"},
    {"http://[::ffff:10.0.0.1]", "http", "::ffff:10.0.0.1", 80, "/", "", "[::ffff:10.0.0.1]",
     "http://[::ffff:10.0.0.1]", "http://[::ffff:10.0.0.1]/"},
    {"http://my_host-1.internal:65535/p", "http", "my_host-1.internal", 65535, "/p", "",
     "my_host-1.internal:65535", "http://my_host-1.internal:65535",
     "http://my_host-1.internal:65535/p"},
    {"http://h:1", "http", "h", 1, "/", "", "h:1", "http://h:1", "http://h:1/"},
    {"http://h/search?u=http://x", "http", "h", 80, "/search", "u=http://x", "h", "http://h",
     "http://h/search?u=http://x"},
    {"http://h/%20encoded", "http", "h", 80, "/%20encoded", "", "h", "http://h",
     "http://h/%20encoded"},
};

struct BadUrl {
  const char* text;
  const char* message;  // a substring of the error sentence
};

const BadUrl kBadUrls[] = {
    {"", "is not an absolute http(s) URL"},
    {"localhost:8080", "is not an absolute http(s) URL"},
    {"/api/v1/", "is not an absolute http(s) URL"},
    {"http:/example.com", "is not an absolute http(s) URL"},
    {"://example.com", "is not an absolute http(s) URL"},
    {"/redirect?to=http://x", "is not an absolute http(s) URL"},
    {" http://example.com", "is not an absolute http(s) URL"},
    {"ftp://x", "has scheme \"ftp\"; only http and https are supported"},
    {"ws://example.com/", "has scheme \"ws\""},
    {"http://example.com/#top", "has a fragment"},
    {"http://user:pw@example.com/", "contains user info"},
    {"http://user@example.com", "contains user info"},
    {"http://", "has no host"},
    {"http:///path", "has no host"},
    {"http://:8080/", "has no host"},
    {"http://example.com:/", "has an empty port"},
    {"http://example.com:0/", "has an invalid port \"0\""},
    {"http://example.com:65536/", "has an invalid port \"65536\""},
    {"http://example.com:-1/", "has an invalid port"},
    {"http://example.com:80a/", "has an invalid port"},
    {"http://example.com:99999999999999999999/", "has an invalid port"},
    {"http://exa mple.com/", "has an invalid character ' ' in its host"},
    {"http://example.com:80:81/", "has an invalid character ':' in its host"},
    {"http://ex%41mple.com/", "has an invalid character '%' in its host"},
    {"http://[::1/", "has an unterminated IPv6 literal"},
    {"http://[]/", "has an empty host"},
    {"http://[::1]x/", "has junk after ']'"},
    {"http://[::1]:/", "has an empty port"},
    {"http://[fe80::1%25eth0]/", "has an invalid IPv6 literal"},
    {"http://[example.com]/", "has an invalid IPv6 literal"},
    {"http://example.com/a b", "contains a space or control character"},
    {"http://example.com/?q=a b", "contains a space or control character"},
    {"http://example.com/\x7f", "contains a space or control character"},
    {"http://example.com/\n", "contains a space or control character"},
};

}  // namespace

TEST_CASE("parse_url accepts absolute http(s) URLs and normalises them") {
  for (const GoodUrl& c : kGoodUrls) {
    CAPTURE(c.text);
    std::string error;
    std::optional<lp::Url> url = lp::parse_url(c.text, &error);
    REQUIRE_MESSAGE(url.has_value(), error);
    CHECK(error.empty());
    CHECK(url->scheme == c.scheme);
    CHECK(url->host == c.host);
    CHECK(url->port == c.port);
    CHECK(url->path == c.path);
    CHECK(url->query == c.query);
    CHECK(url->authority() == c.authority);
    CHECK(url->origin() == c.origin);
    CHECK(url->to_string() == c.to_string);
    CHECK(url->tls() == (std::string(c.scheme) == "https"));
  }
}

TEST_CASE("parse_url rejects anything else with a sentence naming the problem") {
  for (const BadUrl& c : kBadUrls) {
    CAPTURE(c.text);
    std::string error;
    CHECK_FALSE(lp::parse_url(c.text, &error).has_value());
    CHECK_MESSAGE(error.find(c.message) != std::string::npos, error);
    // The sentence quotes the input so a config error shows what was written.
    CHECK(error.rfind("\"" + std::string(c.text) + "\"", 0) == 0);
  }
}

TEST_CASE("parse_url tolerates a null error pointer") {
  CHECK_FALSE(lp::parse_url("ftp://x", nullptr).has_value());
  CHECK(lp::parse_url("http://x", nullptr).has_value());
}

TEST_CASE("Url::default_port depends on the scheme") {
  lp::Url url;
  url.scheme = "http";
  url.host = "h";
  url.port = 80;
  CHECK(url.default_port());
  url.scheme = "https";
  CHECK_FALSE(url.default_port());
  CHECK(url.authority() == "h:80");
  url.port = 443;
  CHECK(url.default_port());
  CHECK(url.authority() == "h");
}
