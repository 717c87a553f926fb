#include "proxy/forward_target.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "common/ascii.h"

namespace lp {
namespace {

constexpr size_t kMaxHostChars = 253;

bool fail(std::string* error, std::string message) {
  *error = std::move(message);
  return false;
}

// Splits "host:port" / "[v6]:port" / "host" into host (brackets removed, lower case) and
// port text (empty when absent).
bool split_authority(std::string_view a, std::string* host, std::string_view* port,
                     std::string* error) {
  if (a.empty()) return fail(error, "empty host");
  if (a.find('@') != std::string_view::npos)
    return fail(error, "userinfo (a name before @) is not allowed");
  if (a.front() == '[') {
    const size_t close = a.find(']');
    if (close == std::string_view::npos) return fail(error, "unterminated IPv6 literal");
    const std::string literal(a.substr(1, close - 1));
    in6_addr addr;
    if (inet_pton(AF_INET6, literal.c_str(), &addr) != 1) {
      return fail(error, "malformed IPv6 literal");
    }
    *host = ascii_lowered(literal);
    std::string_view rest = a.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return fail(error, "junk after the IPv6 literal");
    *port = rest.empty() ? rest : rest.substr(1);
    if (!rest.empty() && port->empty()) return fail(error, "empty port");
    return true;
  }
  const size_t colon = a.rfind(':');
  std::string_view name = colon == std::string_view::npos ? a : a.substr(0, colon);
  if (colon != std::string_view::npos) {
    *port = a.substr(colon + 1);
    if (port->empty()) return fail(error, "empty port");
  }
  if (name.empty()) return fail(error, "empty host");
  if (name.size() > kMaxHostChars) {
    return fail(error, "host longer than " + std::to_string(kMaxHostChars) + " characters");
  }
  const bool valid = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= '0' && c <= '9') || (ascii_lower(c) >= 'a' && ascii_lower(c) <= 'z') || c == '-' ||
           c == '.' || c == '_';
  });
  if (!valid) return fail(error, "host has characters a host name cannot have");
  if (name.front() == '.' || name.find("..") != std::string_view::npos) {
    return fail(error, "host has an empty label");
  }
  *host = ascii_lowered(name);
  return true;
}

bool parse_port(std::string_view text, uint16_t* port, std::string* error) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.size() > 5) {
    return fail(error, "port is not a number");
  }
  if (value == 0 || value > 65535) return fail(error, "port out of range (1-65535)");
  *port = static_cast<uint16_t>(value);
  return true;
}

std::string bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

std::string ForwardTarget::authority() const {
  return bracketed(host) + ":" + std::to_string(port);
}

std::string ForwardTarget::origin() const {
  const bool default_port = port == (tls ? 443 : 80);
  return std::string(tls ? "https://" : "http://") + bracketed(host) +
         (default_port ? "" : ":" + std::to_string(port));
}

std::optional<ForwardTarget> parse_connect_target(std::string_view target, std::string* error) {
  ForwardTarget t;
  t.tls = true;
  std::string_view port;
  std::string why;
  if (!split_authority(target, &t.host, &port, &why)) {
    *error = "CONNECT target: " + why;
    return std::nullopt;
  }
  if (port.empty()) {
    *error = "CONNECT target must name a port (host:port)";
    return std::nullopt;
  }
  if (!parse_port(port, &t.port, &why)) {
    *error = "CONNECT target: " + why;
    return std::nullopt;
  }
  return t;
}

std::optional<ForwardTarget> parse_absolute_target(std::string_view target, std::string* error) {
  const bool tls = ascii_istarts_with(target, "https://");
  if (!tls && !ascii_istarts_with(target, "http://")) {
    *error = "request target must be an absolute http:// or https:// URL";
    return std::nullopt;
  }
  std::string_view rest = target.substr(tls ? 8 : 7);
  const size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (tail.find('#') != std::string_view::npos) {
    *error = "request target has a fragment";
    return std::nullopt;
  }
  ForwardTarget t;
  t.tls = tls;
  std::string_view port;
  std::string why;
  if (!split_authority(authority, &t.host, &port, &why)) {
    *error = "request target: " + why;
    return std::nullopt;
  }
  t.port = tls ? 443 : 80;
  if (!port.empty() && !parse_port(port, &t.port, &why)) {
    *error = "request target: " + why;
    return std::nullopt;
  }
  t.origin_form = tail.empty() || tail.front() == '?' ? "/" + std::string(tail) : std::string(tail);
  return t;
}

}  // namespace lp
