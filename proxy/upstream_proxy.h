// Upstream proxies for the proxy's own outgoing connections: the proxy URL, the NO_PROXY list,
// the choice curl makes from the environment, and the bytes of the SOCKS5 (RFC 1928, RFC 1929)
// and HTTP CONNECT (RFC 9110 section 9.3.6) handshakes. The waiting is upstream_proxy_connect.h's.
//
// Pure functions on strings and bytes: no I/O, no globals, safe from any thread. Everything a
// proxy sends is untrusted: parsers never read past what they were given and report a sentence
// naming the problem. No error text carries a password (UpstreamProxy::display() masks it).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace lp {

struct UpstreamProxy {
  // socks5 and socks5h both send the target's name to the proxy (ATYP 3), so the proxy resolves
  // it: the proxy's resolver is the one that sees the network the tunnel reaches, and nothing
  // leaks to the local resolver. curl's socks5 resolves locally; we keep the scheme apart only
  // so that the URL reads back as written.
  enum class Kind { kHttpConnect, kSocks5, kSocks5h };
  Kind kind = Kind::kHttpConnect;
  std::string host;  // lower case; IPv6 literals without brackets
  uint16_t port = 0;
  // Percent-decoded. Credentials are present when the URL had user info; the password may be
  // empty, the user may not.
  bool has_credentials = false;
  std::string user;
  std::string password;

  bool socks() const { return kind != Kind::kHttpConnect; }
  // "http://proxy:3128", "socks5h://alice:***@[::1]:1080": for logs and error texts, never the
  // password.
  std::string display() const;
};

// Parses "http://[user:password@]host[:port][/]" or the same with socks5:// or socks5h://.
// Default ports: 1080 for SOCKS (IANA), 80 for http:// (the scheme's own, as Go and Python do;
// curl assumes 1080 for every proxy, so configurations should name the port). A path other than
// a lone "/", a query or a fragment is an error; so is https:// (TLS to the proxy). Returns
// nullopt with *error naming the problem; the error never repeats the user info.
std::optional<UpstreamProxy> parse_upstream_proxy(std::string_view url, std::string* error);

// Whether `host` (no brackets for IPv6) on `port` bypasses the proxy, with curl's and Go's
// NO_PROXY rules: entries separated by commas or white space; "*" matches every host; a domain
// ("example.com", ".example.com" or "*.example.com") matches itself and its subdomains,
// case-insensitively; an IP literal ("10.1.2.3", "::1", "[::1]") matches exactly; a CIDR block
// ("10.0.0.0/8", "fd00::/8") matches IP literals inside it (names are never resolved to check);
// an entry may end in ":port" (IPv6 then in brackets) to match that port only.
bool no_proxy_matches(std::string_view list, std::string_view host, uint16_t port);

// Reads one environment variable; nullptr when unset (std::getenv fits).
using EnvLookup = std::function<const char*(const char*)>;

struct EnvironmentProxy {
  std::optional<UpstreamProxy> proxy;  // nullopt: none set for the scheme, or `error`
  std::string variable;                // where `proxy` (or `error`) came from, e.g. "https_proxy"
  std::string no_proxy;                // no_proxy, else NO_PROXY; "" when unset
  std::string error;                   // the variable is set but unusable

  // The proxy for a connection to host:port, or nullptr when there is none or NO_PROXY matches.
  const UpstreamProxy* for_host(std::string_view host, uint16_t port) const;
};

// The proxy curl would use for a `target_scheme` ("http" or "https") URL: https_proxy,
// HTTPS_PROXY (resp. http_proxy, HTTP_PROXY), then all_proxy, ALL_PROXY; the lower-case name
// wins and an empty value counts as unset. curl ignores HTTP_PROXY because a CGI program gets
// request headers as HTTP_* variables (httpoxy); a daemon has no such problem, so we read it.
// A value without "scheme://" is an http:// proxy, as for curl.
EnvironmentProxy proxy_from_environment(const EnvLookup& getenv, std::string_view target_scheme);

// Outcome of parsing a proxy's reply from the bytes received so far. Every step has a reply of
// known end, so a parser reports kNeedMore until it has all of it and then how many bytes it
// was: what follows belongs to the next step or to the tunnel.
struct ProxyReply {
  enum class State { kNeedMore, kOk, kError };
  State state = State::kNeedMore;
  size_t consumed = 0;  // kOk: bytes of the reply
  uint8_t method = 0;   // kOk of socks5_parse_method_selection: the method the proxy chose
  std::string error;    // kError: a sentence naming the problem
};

// --- SOCKS5 --------------------------------------------------------------------------------------

inline constexpr uint8_t kSocks5NoAuth = 0x00;
inline constexpr uint8_t kSocks5Password = 0x02;

// Version identifier/method selection: "no authentication", plus "user name and password" when
// we have credentials (the proxy picks; offering both is what curl does).
std::string socks5_greeting(bool offer_password);
ProxyReply socks5_parse_method_selection(std::string_view bytes, bool offered_password);
// RFC 1929 request; false with *error when the user is empty or either is over 255 bytes.
bool socks5_password_request(std::string_view user, std::string_view password, std::string* out,
                             std::string* error);
ProxyReply socks5_parse_password_reply(std::string_view bytes);
// CONNECT to an IPv4 or IPv6 literal (brackets allowed) or a domain name of 1-255 bytes.
bool socks5_connect_request(std::string_view host, uint16_t port, std::string* out,
                            std::string* error);
ProxyReply socks5_parse_connect_reply(std::string_view bytes);
// RFC 1928 section 6: "connection refused by destination host" for 5, and so on.
std::string socks5_reply_text(uint8_t code);

// --- HTTP CONNECT --------------------------------------------------------------------------------

// Replies larger than this are not a CONNECT answer we want.
inline constexpr size_t kMaxConnectReplyHead = 16 * 1024;

// "CONNECT host:port HTTP/1.1" with Host and, with credentials, Proxy-Authorization: Basic.
// False with *error when host has characters no host name or IP literal has.
bool http_connect_request(const UpstreamProxy& proxy, std::string_view host, uint16_t port,
                          std::string* out, std::string* error);
// The response head: any 2xx opens the tunnel (RFC 9110); 407 is "proxy requires credentials"
// or, when we sent some, "proxy rejected credentials"; anything else names the status.
ProxyReply http_parse_connect_reply(std::string_view bytes, bool sent_credentials);

// RFC 4648 base64 (with padding), for Proxy-Authorization.
std::string base64_encode(std::string_view bytes);

}  // namespace lp
