#include "proxy/upstream_proxy.h"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

namespace lp {
namespace {

using namespace std::string_literals;
using Kind = UpstreamProxy::Kind;
using State = ProxyReply::State;

// A reply parser must give the same answer however the reply is split across reads: every
// prefix is kNeedMore (or, for a reply that fails, already the same failure), the whole reply
// gives the result, and bytes after it (the tunnel's) change nothing.
void check_reply(const std::function<ProxyReply(std::string_view)>& parse, const std::string& reply,
                 State want, size_t consumed, const std::string& error_part) {
  for (size_t k = 0; k < reply.size(); ++k) {
    const ProxyReply r = parse(std::string_view(reply).substr(0, k));
    if (r.state == State::kNeedMore) continue;
    CHECK_MESSAGE(want == State::kError, "prefix of " << k << " bytes ended early");
    CHECK_MESSAGE(r.error.find(error_part) != std::string::npos, r.error);
  }
  for (const std::string& bytes : {reply, reply + "\x16\x03\x01 tunnel bytes"s}) {
    const ProxyReply r = parse(bytes);
    CHECK(r.state == want);
    if (want == State::kOk) CHECK(r.consumed == consumed);
    if (want == State::kError)
      CHECK_MESSAGE(r.error.find(error_part) != std::string::npos, r.error);
  }
}

TEST_CASE("parse_upstream_proxy accepts the proxy URLs we support") {
  struct Case {
    std::string url;
    Kind kind;
    std::string host;
    uint16_t port;
    bool creds;
    std::string user, password;
  };
  const std::vector<Case> cases = {
      {"http://proxy:3128", Kind::kHttpConnect, "proxy", 3128, false, "", ""},
      {"HTTP://Proxy.Example:3128/", Kind::kHttpConnect, "proxy.example", 3128, false, "", ""},
      {"http://proxy", Kind::kHttpConnect, "proxy", 80, false, "", ""},
      {"socks5://10.0.0.1", Kind::kSocks5, "10.0.0.1", 1080, false, "", ""},
      {"socks5h://[::1]:1081", Kind::kSocks5h, "::1", 1081, false, "", ""},
      {"socks5://alice:s%40cret@h:1", Kind::kSocks5, "h", 1, true, "alice", "s@cret"},
      {"http://alice@h:1", Kind::kHttpConnect, "h", 1, true, "alice", ""},
      {"http://a%3Ab:p%2Fw:x@h", Kind::kHttpConnect, "h", 80, true, "a:b", "p/w:x"},
      {"socks5h://u:p@my_proxy.internal:65535", Kind::kSocks5h, "my_proxy.internal", 65535, true,
       "u", "p"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.url);
    std::string error;
    const std::optional<UpstreamProxy> p = parse_upstream_proxy(c.url, &error);
    REQUIRE_MESSAGE(p, error);
    CHECK(p->kind == c.kind);
    CHECK(p->host == c.host);
    CHECK(p->port == c.port);
    CHECK(p->has_credentials == c.creds);
    CHECK(p->user == c.user);
    CHECK(p->password == c.password);
  }
}

TEST_CASE("parse_upstream_proxy names the problem and never repeats the password") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "is empty"},
      {"proxy:3128", "has no scheme"},
      {"alice:secret@proxy:3128", "has no scheme"},
      {"https://proxy:3128", "TLS to the proxy is not supported"},
      {"socks4://proxy", "has scheme \"socks4\""},
      {"http://proxy:3128/path", "has a path, query or fragment"},
      {"http://proxy:3128?x=1", "has a path, query or fragment"},
      {"http://u:secret@proxy#frag", "has a path, query or fragment"},
      {"http://proxy:0", "invalid port"},
      {"http://proxy:99999", "invalid port"},
      {"http://proxy:", "invalid port"},
      {"http://user:secret", "invalid port"},
      {"http://", "has no host"},
      {"http://u:secret@:80", "has no host"},
      {"http://[::1", "unterminated IPv6 literal"},
      {"http://[zz]:1", "invalid IPv6 literal"},
      {"http://[::1]x", "junk after its IPv6 literal"},
      {"http://a b", "space or control character"},
      {"http://u:secret\n@h", "space or control character"},
      {"http://u:secret%zz@h", "malformed percent-encoding"},
      {"http://u:secret%4@h", "malformed percent-encoding"},
      {"http://:secret@h", "without a user name"},
      {"http://proxy!:1", "invalid character '!'"},
  };
  for (const auto& [url, want] : cases) {
    CAPTURE(url);
    std::string error;
    CHECK_FALSE(parse_upstream_proxy(url, &error));
    CHECK_MESSAGE(error.find(want) != std::string::npos, error);
    CHECK(error.starts_with("upstream proxy URL "));
    CHECK(error.find("secret") == std::string::npos);
  }
}

TEST_CASE("UpstreamProxy display masks the password") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"http://proxy", "http://proxy:80"},
      {"socks5://10.0.0.1", "socks5://10.0.0.1:1080"},
      {"socks5h://alice:pw@[::1]:1080", "socks5h://alice:***@[::1]:1080"},
      {"http://al%20ice@h:1", "http://al%20ice:***@h:1"},
  };
  for (const auto& [url, want] : cases) {
    CAPTURE(url);
    std::string error;
    const std::optional<UpstreamProxy> p = parse_upstream_proxy(url, &error);
    REQUIRE_MESSAGE(p, error);
    CHECK(p->display() == want);
  }
}

TEST_CASE("no_proxy_matches follows curl and Go") {
  struct Case {
    std::string list;
    std::string host;
    uint16_t port;
    bool match;
  };
  const std::vector<Case> cases = {
      {"*", "anything.example", 443, true},
      {"a.com,*", "b.com", 443, true},
      {"", "example.com", 443, false},
      {" , ,", "example.com", 443, false},
      {"example.com", "example.com", 443, true},
      {"example.com", "api.example.com", 443, true},
      {"example.com", "badexample.com", 443, false},
      {"example.com", "example.com.evil", 443, false},
      {".example.com", "example.com", 443, true},
      {".example.com", "a.b.example.com", 443, true},
      {"*.example.com", "a.example.com", 443, true},
      {"Example.COM", "API.example.com", 443, true},
      {"example.com.", "example.com", 443, true},
      {"example.com", "example.com.", 443, true},
      {"com", "example.com", 443, true},
      {"example.com:443", "example.com", 443, true},
      {"example.com:443", "example.com", 80, false},
      {"example.com:", "example.com", 80, false},
      {"10.1.2.3", "10.1.2.3", 443, true},
      {"10.1.2.3", "10.1.2.4", 443, false},
      {"10.1.2.3:8080", "10.1.2.3", 8080, true},
      {"10.1.2.3:8080", "10.1.2.3", 80, false},
      {"10.0.0.0/8", "10.200.3.4", 443, true},
      {"10.0.0.0/8", "11.0.0.1", 443, false},
      {"10.0.0.0/8", "ten.example", 443, false},
      {"192.168.1.0/23", "192.168.0.200", 443, true},
      {"192.168.1.0/23", "192.168.2.1", 443, false},
      {"10.0.0.0/33", "10.0.0.1", 443, false},
      {"0.0.0.0/0", "1.2.3.4", 443, true},
      {"::1", "::1", 443, true},
      {"[::1]", "::1", 443, true},
      {"::1", "[::1]", 443, true},
      {"[::1]:8080", "::1", 8080, true},
      {"[::1]:8080", "::1", 80, false},
      {"fe80::", "fe80::", 443, true},
      {"fd00::/8", "fd12::1", 443, true},
      {"fd00::/8", "fe80::1", 443, false},
      {"fd00::/8", "10.0.0.1", 443, false},
      {"localhost, 127.0.0.1 ,example.com", "example.com", 443, true},
      {"localhost, 127.0.0.1 ,example.com", "127.0.0.1", 443, true},
      {"a.com b.com\tc.com", "c.com", 443, true},
      {"example.com", "10.0.0.1", 443, false},
      {"10.0.0.1", "ten.example", 443, false},
      {"[::1", "::1", 443, false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.list);
    CAPTURE(c.host);
    CAPTURE(c.port);
    CHECK(no_proxy_matches(c.list, c.host, c.port) == c.match);
  }
}

TEST_CASE("proxy_from_environment chooses as curl does") {
  struct Case {
    std::map<std::string, std::string> env;
    std::string scheme;
    std::string variable;  // "" : no proxy
    std::string display;
    std::string error_part;
  };
  const std::vector<Case> cases = {
      {{{"https_proxy", "http://lower:1"}, {"HTTPS_PROXY", "http://upper:1"}},
       "https",
       "https_proxy",
       "http://lower:1",
       ""},
      {{{"HTTPS_PROXY", "http://upper:1"}}, "https", "HTTPS_PROXY", "http://upper:1", ""},
      {{{"https_proxy", ""}, {"HTTPS_PROXY", "http://upper:1"}},
       "https",
       "HTTPS_PROXY",
       "http://upper:1",
       ""},
      {{{"http_proxy", "http://h:1"}}, "https", "", "", ""},
      {{{"https_proxy", "http://h:1"}}, "http", "", "", ""},
      {{{"http_proxy", "proxy:3128"}}, "http", "http_proxy", "http://proxy:3128", ""},
      {{{"HTTP_PROXY", "socks5://s"}}, "HTTP", "HTTP_PROXY", "socks5://s:1080", ""},
      {{{"all_proxy", "socks5h://s:1080"}}, "https", "all_proxy", "socks5h://s:1080", ""},
      {{{"ALL_PROXY", "socks5h://s:1080"}, {"https_proxy", "http://h:2"}},
       "https",
       "https_proxy",
       "http://h:2",
       ""},
      {{{"https_proxy", "ftp://x"}},
       "https",
       "https_proxy",
       "",
       "https_proxy: upstream proxy URL has scheme \"ftp\""},
      {{}, "https", "", "", ""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.variable);
    CAPTURE(c.scheme);
    const EnvironmentProxy env = proxy_from_environment(
        [&](const char* name) -> const char* {
          auto it = c.env.find(name);
          return it == c.env.end() ? nullptr : it->second.c_str();
        },
        c.scheme);
    CHECK(env.variable == c.variable);
    CHECK(env.proxy.has_value() == !c.display.empty());
    if (env.proxy) CHECK(env.proxy->display() == c.display);
    CHECK_MESSAGE(env.error.find(c.error_part) != std::string::npos, env.error);
    CHECK(env.error.empty() == c.error_part.empty());
  }
}

TEST_CASE("proxy_from_environment reads no_proxy before NO_PROXY and for_host applies it") {
  std::map<std::string, std::string> vars = {{"https_proxy", "http://p:3128"},
                                             {"no_proxy", "internal.example,10.0.0.0/8"},
                                             {"NO_PROXY", "ignored.example"}};
  const EnvironmentProxy env = proxy_from_environment(
      [&](const char* name) -> const char* {
        auto it = vars.find(name);
        return it == vars.end() ? nullptr : it->second.c_str();
      },
      "https");
  CHECK(env.no_proxy == "internal.example,10.0.0.0/8");
  REQUIRE(env.for_host("api.openai.com", 443) != nullptr);
  CHECK(env.for_host("api.openai.com", 443)->display() == "http://p:3128");
  CHECK(env.for_host("db.internal.example", 443) == nullptr);
  CHECK(env.for_host("10.2.3.4", 443) == nullptr);
  CHECK(env.for_host("ignored.example", 443) != nullptr);
  CHECK(EnvironmentProxy{}.for_host("api.openai.com", 443) == nullptr);
}

TEST_CASE("socks5 greeting offers user and password only with credentials") {
  CHECK(socks5_greeting(false) == "\x05\x01\x00"s);
  CHECK(socks5_greeting(true) == "\x05\x02\x00\x02"s);
}

TEST_CASE("socks5 method selection at every split") {
  struct Case {
    std::string bytes;
    bool offered_password;
    State state;
    uint8_t method;
    std::string error_part;
  };
  const std::vector<Case> cases = {
      {"\x05\x00"s, false, State::kOk, 0, ""},
      {"\x05\x00"s, true, State::kOk, 0, ""},
      {"\x05\x02"s, true, State::kOk, 2, ""},
      {"\x05\x02"s, false, State::kError, 0, "method 2, which was not offered"},
      {"\x05\x01"s, true, State::kError, 0, "method 1, which was not offered"},
      {"\x05\xff"s, false, State::kError, 0, "may need a user name and password"},
      {"\x05\xff"s, true, State::kError, 0, "none of the offered authentication methods"},
      {"\x04\x00"s, false, State::kError, 0, "not a SOCKS5 proxy (it answered with version 4)"},
      {"HTTP/1.1 400 Bad Request\r\n\r\n", false, State::kError, 0, "version 72"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.error_part);
    check_reply(
        [&](std::string_view b) { return socks5_parse_method_selection(b, c.offered_password); },
        c.bytes, c.state, 2, c.error_part);
    if (c.state == State::kOk)
      CHECK(socks5_parse_method_selection(c.bytes, c.offered_password).method == c.method);
  }
}

TEST_CASE("socks5 password request bounds user and password") {
  struct Case {
    std::string user, password;
    std::string bytes;  // "" : refused
    std::string error_part;
  };
  const std::vector<Case> cases = {
      {"alice", "pw", "\x01\x05"s + "alice" + "\x02"s + "pw", ""},
      {"u", "", "\x01\x01u\x00"s, ""},
      {std::string(255, 'u'), std::string(255, 'p'),
       "\x01\xff"s + std::string(255, 'u') + "\xff"s + std::string(255, 'p'), ""},
      {"", "pw", "", "user name must be 1-255 bytes (it is 0)"},
      {std::string(256, 'u'), "pw", "", "user name must be 1-255 bytes (it is 256)"},
      {"u", std::string(256, 'p'), "", "password must be at most 255 bytes (it is 256)"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.error_part);
    std::string out, error;
    const bool ok = socks5_password_request(c.user, c.password, &out, &error);
    CHECK(ok == c.error_part.empty());
    if (ok) CHECK(out == c.bytes);
    if (!ok) CHECK_MESSAGE(error.find(c.error_part) != std::string::npos, error);
    CHECK(error.find(std::string(256, 'p')) == std::string::npos);
  }
}

TEST_CASE("socks5 password reply at every split") {
  const std::vector<std::tuple<std::string, State, std::string>> cases = {
      {"\x01\x00"s, State::kOk, ""},
      {"\x05\x00"s, State::kOk, ""},
      {"\x01\x01"s, State::kError, "authentication failed"},
      {"\x01\xff"s, State::kError, "authentication failed"},
      {"\x02\x00"s, State::kError, "malformed authentication reply (version 2)"},
  };
  for (const auto& [bytes, state, error_part] : cases) {
    CAPTURE(error_part);
    check_reply(socks5_parse_password_reply, bytes, state, 2, error_part);
  }
}

TEST_CASE("socks5 connect request for names and addresses") {
  const std::vector<std::tuple<std::string, uint16_t, std::string, std::string>> cases = {
      {"10.0.0.1", 443, "\x05\x01\x00\x01\x0a\x00\x00\x01\x01\xbb"s, ""},
      {"::1", 80, "\x05\x01\x00\x04"s + std::string(15, '\0') + "\x01\x00\x50"s, ""},
      {"[::1]", 80, "\x05\x01\x00\x04"s + std::string(15, '\0') + "\x01\x00\x50"s, ""},
      {"api.example.com", 8443, "\x05\x01\x00\x03\x0f"s + "api.example.com" + "\x20\xfb"s, ""},
      {std::string(255, 'a'), 1, "\x05\x01\x00\x03\xff"s + std::string(255, 'a') + "\x00\x01"s, ""},
      {std::string(256, 'a'), 1, "", "host name must be 1-255 bytes (it is 256)"},
      {"", 1, "", "host name must be 1-255 bytes (it is 0)"},
  };
  for (const auto& [host, port, bytes, error_part] : cases) {
    CAPTURE(host);
    std::string out, error;
    const bool ok = socks5_connect_request(host, port, &out, &error);
    CHECK(ok == error_part.empty());
    if (ok) CHECK(out == bytes);
    if (!ok) CHECK_MESSAGE(error.find(error_part) != std::string::npos, error);
  }
}

TEST_CASE("socks5 connect reply at every split") {
  const std::string v4 = "\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"s;
  const std::string v6 = "\x05\x00\x00\x04"s + std::string(16, '\x01') + "\x04\x38"s;
  const std::string name = "\x05\x00\x00\x03\x09proxy.lan\x04\x38"s;
  const std::string empty_name = "\x05\x00\x00\x03\x00\x04\x38"s;
  const std::vector<std::tuple<std::string, State, size_t, std::string>> cases = {
      {v4, State::kOk, 10, ""},
      {v6, State::kOk, 22, ""},
      {name, State::kOk, 16, ""},
      {empty_name, State::kOk, 7, ""},
      {"\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00"s, State::kError, 0,
       "general SOCKS server failure"},
      {"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00"s, State::kError, 0,
       "connection not allowed by ruleset"},
      {"\x05\x03"s, State::kError, 0, "network unreachable"},
      {"\x05\x04"s, State::kError, 0, "host unreachable"},
      {"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00"s, State::kError, 0,
       "connection refused by destination host"},
      {"\x05\x06"s, State::kError, 0, "TTL expired"},
      {"\x05\x07"s, State::kError, 0, "command not supported"},
      {"\x05\x08"s, State::kError, 0, "address type not supported"},
      {"\x05\x09"s, State::kError, 0, "unassigned reply code 9"},
      {"\x04\x00"s, State::kError, 0, "not a SOCKS5 proxy"},
      {"\x05\x00\x00\x07\x00\x00"s, State::kError, 0, "unknown address type 7"},
  };
  for (const auto& [bytes, state, consumed, error_part] : cases) {
    CAPTURE(error_part);
    CAPTURE(consumed);
    check_reply(socks5_parse_connect_reply, bytes, state, consumed, error_part);
  }
}

TEST_CASE("http CONNECT request carries Host and Basic credentials") {
  std::string error;
  UpstreamProxy plain = *parse_upstream_proxy("http://p:3128", &error);
  UpstreamProxy creds = *parse_upstream_proxy("http://alice:secret@p:3128", &error);
  UpstreamProxy colon = *parse_upstream_proxy("http://a%3Ab:secret@p:3128", &error);
  struct Case {
    const UpstreamProxy* proxy;
    std::string host;
    uint16_t port;
    std::string want;  // "" : refused
    std::string error_part;
  };
  const std::vector<Case> cases = {
      {&plain, "api.example.com", 443,
       "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n", ""},
      {&creds, "10.0.0.1", 8443,
       "CONNECT 10.0.0.1:8443 HTTP/1.1\r\nHost: 10.0.0.1:8443\r\n"
       "Proxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n",
       ""},
      {&plain, "::1", 443, "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", ""},
      {&plain, "[::1]", 443, "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", ""},
      {&plain, "evil\r\nX-Injected: 1", 443, "", "not a host name or IP literal"},
      {&plain, "a b", 443, "", "not a host name or IP literal"},
      {&plain, "", 443, "", "not a host name or IP literal"},
      {&plain, "no:tanip", 443, "", "not a host name or IP literal"},
      {&colon, "h", 443, "", "contains ':'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.host);
    std::string out;
    error.clear();
    const bool ok = http_connect_request(*c.proxy, c.host, c.port, &out, &error);
    CHECK(ok == c.error_part.empty());
    if (ok) CHECK(out == c.want);
    if (!ok) CHECK_MESSAGE(error.find(c.error_part) != std::string::npos, error);
    CHECK(error.find("secret") == std::string::npos);
  }
}

TEST_CASE("http CONNECT reply at every split") {
  const std::string ok200 = "HTTP/1.1 200 Connection established\r\n\r\n";
  const std::string ok10 = "HTTP/1.0 200 OK\r\nProxy-Agent: squid\r\n\r\n";
  const std::string ok_bare_lf = "HTTP/1.1 200 OK\n\n";
  const std::string auth =
      "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n"
      "Content-Length: 0\r\n\r\n";
  const std::string huge = "HTTP/1.1 200 OK\r\nX-Pad: " + std::string(17 * 1024, 'a') + "\r\n\r\n";
  struct Case {
    std::string bytes;
    bool sent_credentials;
    State state;
    size_t consumed;
    std::string error_part;
  };
  const std::vector<Case> cases = {
      {ok200, false, State::kOk, ok200.size(), ""},
      {ok10, true, State::kOk, ok10.size(), ""},
      {ok_bare_lf, false, State::kOk, ok_bare_lf.size(), ""},
      {"HTTP/1.1 204 No Content\r\n\r\n", false, State::kOk, 27, ""},
      {auth, false, State::kError, 0, "proxy requires credentials (407 Proxy Authentication"},
      {auth, true, State::kError, 0, "proxy rejected credentials (407 Proxy Authentication"},
      {"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", false, State::kError, 0,
       "proxy answered CONNECT with 502 Bad Gateway"},
      {"HTTP/1.1 403\r\n\r\n", false, State::kError, 0, "proxy answered CONNECT with 403"},
      {"\x05\x00garbage\r\n\r\n"s, false, State::kError, 0, "malformed answer to CONNECT"},
      {huge, false, State::kError, 0, "larger than 16384 bytes"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.error_part);
    check_reply([&](std::string_view b) { return http_parse_connect_reply(b, c.sent_credentials); },
                c.bytes, c.state, c.consumed, c.error_part);
  }
}

TEST_CASE("base64_encode pads as RFC 4648 says") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
      {"\xff\xfe\x00"s, "//4A"},
  };
  for (const auto& [in, want] : cases) {
    CAPTURE(want);
    CHECK(base64_encode(in) == want);
  }
}

}  // namespace
}  // namespace lp
