#include "proxy/upstream_proxy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <vector>

#include "common/ascii.h"
#include "common/http_message.h"

namespace lp {
namespace {

bool is_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return ascii_lower(c) - 'a' + 10;
}

bool is_control_or_space(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7f;
}

bool valid_name_char(char c) {
  return is_alnum(c) || c == '-' || c == '.' || c == '_';
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return std::nullopt;
    out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
    i += 2;
  }
  return out;
}

std::string percent_encode(std::string_view s) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      const auto u = static_cast<unsigned char>(c);
      out += {'%', kDigits[u >> 4], kDigits[u & 15]};
    }
  }
  return out;
}

std::optional<uint16_t> parse_port(std::string_view s) {
  unsigned value = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

std::string_view strip_brackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

std::string bracketed(std::string_view host) {
  if (host.find(':') != std::string_view::npos) return "[" + std::string(host) + "]";
  return std::string(host);
}

// An IP literal's bytes: 4 for IPv4, 16 for IPv6. inet_pton is pure: it parses, nothing else.
struct IpAddress {
  int family = 0;
  std::array<unsigned char, 16> bytes{};
  size_t size() const { return family == AF_INET ? 4 : 16; }
};

std::optional<IpAddress> parse_ip(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  char buf[46];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress ip;
  if (::inet_pton(AF_INET, buf, ip.bytes.data()) == 1) {
    ip.family = AF_INET;
    return ip;
  }
  if (::inet_pton(AF_INET6, buf, ip.bytes.data()) == 1) {
    ip.family = AF_INET6;
    return ip;
  }
  return std::nullopt;
}

bool in_block(const IpAddress& ip, const IpAddress& net, unsigned prefix) {
  if (ip.family != net.family || prefix > ip.size() * 8) return false;
  const size_t whole = prefix / 8;
  if (std::memcmp(ip.bytes.data(), net.bytes.data(), whole) != 0) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (ip.bytes[whole] & mask) == (net.bytes[whole] & mask);
}

std::string lowered_host(std::string_view host) {
  std::string h = ascii_lowered(strip_brackets(host));
  if (!h.empty() && h.back() == '.') h.pop_back();
  return h;
}

// One NO_PROXY entry against an already normalised host.
bool entry_matches(std::string_view entry, const std::string& host,
                   const std::optional<IpAddress>& host_ip, uint16_t port) {
  if (entry == "*") return true;
  std::string_view name = entry;
  std::string_view port_text;
  bool has_port = false;
  if (entry.front() == '[') {
    const size_t close = entry.find(']');
    if (close == std::string_view::npos) return false;
    name = entry.substr(1, close - 1);
    const std::string_view after = entry.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return false;
      port_text = after.substr(1);
      has_port = true;
    }
  } else if (std::count(entry.begin(), entry.end(), ':') == 1) {
    const size_t colon = entry.find(':');
    name = entry.substr(0, colon);
    port_text = entry.substr(colon + 1);
    has_port = true;
  }
  if (has_port) {
    const std::optional<uint16_t> p = parse_port(port_text);
    if (!p || *p != port) return false;
  }
  const size_t slash = name.find('/');
  if (slash != std::string_view::npos) {
    const std::optional<IpAddress> net = parse_ip(name.substr(0, slash));
    unsigned prefix = 0;
    const std::string_view bits = name.substr(slash + 1);
    auto [p, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (!net || !host_ip || bits.empty() || ec != std::errc() || p != bits.data() + bits.size()) {
      return false;
    }
    return in_block(*host_ip, *net, prefix);
  }
  if (const std::optional<IpAddress> ip = parse_ip(name)) {
    return host_ip && host_ip->family == ip->family && host_ip->bytes == ip->bytes;
  }
  // A name never matches an address: that would need the resolver, and curl does not either.
  if (host_ip) return false;
  std::string domain = lowered_host(name);
  if (domain.starts_with("*.")) domain.erase(0, 1);
  if (domain.starts_with(".")) domain.erase(0, 1);
  if (domain.empty()) return false;
  if (host == domain) return true;
  return host.size() > domain.size() && host.ends_with(domain) &&
         host[host.size() - domain.size() - 1] == '.';
}

ProxyReply need_more() {
  return {};
}

ProxyReply failure(std::string error) {
  ProxyReply r;
  r.state = ProxyReply::State::kError;
  r.error = std::move(error);
  return r;
}

ProxyReply success(size_t consumed, uint8_t method = 0) {
  ProxyReply r;
  r.state = ProxyReply::State::kOk;
  r.consumed = consumed;
  r.method = method;
  return r;
}

uint8_t byte_at(std::string_view s, size_t i) {
  return static_cast<uint8_t>(s[i]);
}

std::string not_socks5(uint8_t version) {
  return "not a SOCKS5 proxy (it answered with version " + std::to_string(version) + ")";
}

// A host as the CONNECT request and Host header carry it: a name or an IP literal.
bool valid_target_host(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  if (host.find(':') != std::string_view::npos) return parse_ip(host).has_value();
  return std::all_of(host.begin(), host.end(), valid_name_char);
}

}  // namespace

std::string UpstreamProxy::display() const {
  std::string s;
  switch (kind) {
    case Kind::kHttpConnect:
      s = "http://";
      break;
    case Kind::kSocks5:
      s = "socks5://";
      break;
    case Kind::kSocks5h:
      s = "socks5h://";
      break;
  }
  if (has_credentials) s += percent_encode(user) + ":***@";
  return s + bracketed(host) + ":" + std::to_string(port);
}

std::optional<UpstreamProxy> parse_upstream_proxy(std::string_view url, std::string* error) {
  // No message repeats the authority: it may hold the password, even when malformed.
  auto fail = [&](std::string msg) -> std::optional<UpstreamProxy> {
    if (error) *error = "upstream proxy URL " + std::move(msg);
    return std::nullopt;
  };
  if (url.empty()) return fail("is empty");
  if (std::any_of(url.begin(), url.end(), is_control_or_space)) {
    return fail("contains a space or control character");
  }
  const size_t sep = url.find("://");
  const std::string_view scheme_text = url.substr(0, sep);
  if (sep == std::string_view::npos || scheme_text.empty() ||
      !std::all_of(scheme_text.begin(), scheme_text.end(), is_alnum)) {
    return fail("has no scheme (expected http://, socks5:// or socks5h://)");
  }
  UpstreamProxy proxy;
  const std::string scheme = ascii_lowered(scheme_text);
  if (scheme == "http") {
    proxy.kind = UpstreamProxy::Kind::kHttpConnect;
    proxy.port = 80;
  } else if (scheme == "socks5" || scheme == "socks5h") {
    proxy.kind = scheme == "socks5" ? UpstreamProxy::Kind::kSocks5 : UpstreamProxy::Kind::kSocks5h;
    proxy.port = 1080;
  } else if (scheme == "https") {
    return fail(
        "has scheme https: TLS to the proxy is not supported (use http://; the tunnel "
        "to an https destination is still TLS end to end)");
  } else {
    return fail("has scheme \"" + scheme + "\"; expected http, socks5 or socks5h");
  }
  const std::string_view rest = url.substr(sep + 3);
  const size_t authority_end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, authority_end);
  if (authority_end != std::string_view::npos && rest.substr(authority_end) != "/") {
    return fail(
        "has a path, query or fragment; expected only scheme://[user:password@]host[:port]");
  }
  std::string_view hostport = authority;
  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    const size_t colon = userinfo.find(':');
    std::optional<std::string> user = percent_decode(userinfo.substr(0, colon));
    std::optional<std::string> password = colon == std::string_view::npos
                                              ? std::string()
                                              : percent_decode(userinfo.substr(colon + 1));
    if (!user || !password) return fail("has a malformed percent-encoding in its user info");
    if (user->empty()) return fail("has user info without a user name");
    proxy.has_credentials = true;
    proxy.user = std::move(*user);
    proxy.password = std::move(*password);
    hostport = authority.substr(at + 1);
  }
  std::string_view host = hostport;
  std::string_view port_text;
  bool has_port = false;
  if (!hostport.empty() && hostport.front() == '[') {
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos) return fail("has an unterminated IPv6 literal");
    host = hostport.substr(1, close - 1);
    const std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("has junk after its IPv6 literal");
      port_text = after.substr(1);
      has_port = true;
    }
    const std::optional<IpAddress> ip = parse_ip(host);
    if (!ip || ip->family != AF_INET6) return fail("has an invalid IPv6 literal");
  } else {
    const size_t colon = hostport.rfind(':');
    if (colon != std::string_view::npos) {
      host = hostport.substr(0, colon);
      port_text = hostport.substr(colon + 1);
      has_port = true;
    }
    for (char c : host) {
      if (!valid_name_char(c)) {
        return fail("has an invalid character '" + std::string(1, c) + "' in its host");
      }
    }
  }
  if (host.empty()) return fail("has no host");
  proxy.host = ascii_lowered(host);
  if (has_port) {
    const std::optional<uint16_t> port = parse_port(port_text);
    if (!port) return fail("has an invalid port (expected 1-65535)");
    proxy.port = *port;
  }
  return proxy;
}

bool no_proxy_matches(std::string_view list, std::string_view host, uint16_t port) {
  const std::string h = lowered_host(host);
  if (h.empty()) return false;
  const std::optional<IpAddress> host_ip = parse_ip(h);
  size_t pos = 0;
  while (pos < list.size()) {
    const size_t end = list.find_first_of(", \t\r\n", pos);
    const std::string_view entry =
        list.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (!entry.empty() && entry_matches(entry, h, host_ip, port)) return true;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return false;
}

const UpstreamProxy* EnvironmentProxy::for_host(std::string_view host, uint16_t port) const {
  if (!proxy || no_proxy_matches(no_proxy, host, port)) return nullptr;
  return &*proxy;
}

EnvironmentProxy proxy_from_environment(const EnvLookup& getenv, std::string_view target_scheme) {
  EnvironmentProxy env;
  auto value = [&](const char* name) -> std::string_view {
    const char* v = getenv(name);
    return v ? std::string_view(v) : std::string_view();
  };
  for (const char* name : {"no_proxy", "NO_PROXY"}) {
    if (!value(name).empty()) {
      env.no_proxy = std::string(value(name));
      break;
    }
  }
  const std::string scheme = ascii_lowered(target_scheme);
  std::vector<const char*> names;
  if (scheme == "https") names = {"https_proxy", "HTTPS_PROXY"};
  if (scheme == "http") names = {"http_proxy", "HTTP_PROXY"};
  names.insert(names.end(), {"all_proxy", "ALL_PROXY"});
  for (const char* name : names) {
    const std::string_view v = value(name);
    if (v.empty()) continue;
    env.variable = name;
    const std::string url =
        v.find("://") == std::string_view::npos ? "http://" + std::string(v) : std::string(v);
    std::string error;
    env.proxy = parse_upstream_proxy(url, &error);
    if (!env.proxy) env.error = std::string(name) + ": " + error;
    break;
  }
  return env;
}

// --- SOCKS5 --------------------------------------------------------------------------------------

std::string socks5_greeting(bool offer_password) {
  if (offer_password) return {'\x05', '\x02', '\x00', '\x02'};
  return {'\x05', '\x01', '\x00'};
}

ProxyReply socks5_parse_method_selection(std::string_view bytes, bool offered_password) {
  if (!bytes.empty() && byte_at(bytes, 0) != 5) return failure(not_socks5(byte_at(bytes, 0)));
  if (bytes.size() < 2) return need_more();
  const uint8_t method = byte_at(bytes, 1);
  if (method == 0xff) {
    return failure(offered_password
                       ? "proxy accepts none of the offered authentication methods"
                       : "proxy accepts no unauthenticated clients (it may need a user name and "
                         "password)");
  }
  if (method == kSocks5NoAuth || (method == kSocks5Password && offered_password)) {
    return success(2, method);
  }
  return failure("proxy chose authentication method " + std::to_string(method) +
                 ", which was not offered");
}

bool socks5_password_request(std::string_view user, std::string_view password, std::string* out,
                             std::string* error) {
  if (user.empty() || user.size() > 255) {
    *error = "SOCKS5 user name must be 1-255 bytes (it is " + std::to_string(user.size()) + ")";
    return false;
  }
  if (password.size() > 255) {
    *error =
        "SOCKS5 password must be at most 255 bytes (it is " + std::to_string(password.size()) + ")";
    return false;
  }
  out->clear();
  out->push_back('\x01');
  out->push_back(static_cast<char>(user.size()));
  out->append(user);
  out->push_back(static_cast<char>(password.size()));
  out->append(password);
  return true;
}

ProxyReply socks5_parse_password_reply(std::string_view bytes) {
  // RFC 1929 says version 1; some servers answer 5, which changes nothing we rely on.
  if (!bytes.empty() && byte_at(bytes, 0) != 1 && byte_at(bytes, 0) != 5) {
    return failure("malformed authentication reply (version " + std::to_string(byte_at(bytes, 0)) +
                   ")");
  }
  if (bytes.size() < 2) return need_more();
  if (byte_at(bytes, 1) != 0) {
    return failure("authentication failed (the proxy rejected the user name or password)");
  }
  return success(2);
}

bool socks5_connect_request(std::string_view host, uint16_t port, std::string* out,
                            std::string* error) {
  host = strip_brackets(host);
  out->assign({'\x05', '\x01', '\x00'});
  if (const std::optional<IpAddress> ip = parse_ip(host)) {
    out->push_back(ip->family == AF_INET ? '\x01' : '\x04');
    out->append(reinterpret_cast<const char*>(ip->bytes.data()), ip->size());
  } else {
    if (host.empty() || host.size() > 255) {
      *error = "SOCKS5 host name must be 1-255 bytes (it is " + std::to_string(host.size()) + ")";
      return false;
    }
    out->push_back('\x03');
    out->push_back(static_cast<char>(host.size()));
    out->append(host);
  }
  out->push_back(static_cast<char>(port >> 8));
  out->push_back(static_cast<char>(port & 0xff));
  return true;
}

ProxyReply socks5_parse_connect_reply(std::string_view bytes) {
  if (!bytes.empty() && byte_at(bytes, 0) != 5) return failure(not_socks5(byte_at(bytes, 0)));
  if (bytes.size() < 2) return need_more();
  if (byte_at(bytes, 1) != 0) return failure(socks5_reply_text(byte_at(bytes, 1)));
  if (bytes.size() < 4) return need_more();
  size_t address = 0;
  switch (byte_at(bytes, 3)) {
    case 1:
      address = 4;
      break;
    case 4:
      address = 16;
      break;
    case 3:
      if (bytes.size() < 5) return need_more();
      address = 1 + byte_at(bytes, 4);
      break;
    default:
      return failure("malformed reply (unknown address type " + std::to_string(byte_at(bytes, 3)) +
                     ")");
  }
  const size_t total = 4 + address + 2;
  if (bytes.size() < total) return need_more();
  return success(total);
}

std::string socks5_reply_text(uint8_t code) {
  switch (code) {
    case 0:
      return "succeeded";
    case 1:
      return "general SOCKS server failure";
    case 2:
      return "connection not allowed by ruleset";
    case 3:
      return "network unreachable";
    case 4:
      return "host unreachable";
    case 5:
      return "connection refused by destination host";
    case 6:
      return "TTL expired";
    case 7:
      return "command not supported";
    case 8:
      return "address type not supported";
    default:
      return "unassigned reply code " + std::to_string(code);
  }
}

// --- HTTP CONNECT --------------------------------------------------------------------------------

bool http_connect_request(const UpstreamProxy& proxy, std::string_view host, uint16_t port,
                          std::string* out, std::string* error) {
  host = strip_brackets(host);
  if (!valid_target_host(host)) {
    *error = "CONNECT target is not a host name or IP literal";
    return false;
  }
  // RFC 7617: the user-id of Basic credentials cannot contain a colon.
  if (proxy.has_credentials && proxy.user.find(':') != std::string::npos) {
    *error = "proxy user name contains ':', which Basic authentication cannot carry";
    return false;
  }
  const std::string authority = bracketed(host) + ":" + std::to_string(port);
  *out = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n";
  if (proxy.has_credentials) {
    *out +=
        "Proxy-Authorization: Basic " + base64_encode(proxy.user + ":" + proxy.password) + "\r\n";
  }
  *out += "\r\n";
  return true;
}

ProxyReply http_parse_connect_reply(std::string_view bytes, bool sent_credentials) {
  HeadLimits limits;
  limits.max_head_bytes = kMaxConnectReplyHead;
  limits.max_request_line = kMaxConnectReplyHead;
  limits.max_headers = 100;
  ResponseHead head;
  const ParseResult parsed = parse_response_head(bytes, limits, &head);
  if (parsed.state == ParseResult::State::kIncomplete) return need_more();
  if (parsed.state == ParseResult::State::kError) {
    // Fed as bytes arrive, the parser meets the size limit before any other problem.
    if (bytes.size() > kMaxConnectReplyHead) {
      return failure("answer to CONNECT is larger than " + std::to_string(kMaxConnectReplyHead) +
                     " bytes");
    }
    return failure("malformed answer to CONNECT (" + parsed.error + ")");
  }
  if (head.status >= 200 && head.status < 300) return success(parsed.consumed);
  std::string status = std::to_string(head.status);
  if (!head.reason.empty()) status += " " + head.reason.substr(0, 80);
  if (head.status == 407) {
    return failure(std::string(sent_credentials ? "proxy rejected credentials"
                                                : "proxy requires credentials") +
                   " (" + status + ")");
  }
  return failure("proxy answered CONNECT with " + status);
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v =
        (byte_at(bytes, i) << 16) | (byte_at(bytes, i + 1) << 8) | byte_at(bytes, i + 2);
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63],
            kAlphabet[v & 63]};
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = byte_at(bytes, i) << 16;
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (byte_at(bytes, i) << 16) | (byte_at(bytes, i + 1) << 8);
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63], '='};
  }
  return out;
}

}  // namespace lp
