#include "proxy/forward_target.h"

#include <algorithm>
#include <charconv>

#include "common/ascii.h"
#include "common/host_pattern.h"

namespace lp {
namespace {

bool fail(std::string* error, std::string message) {
  *error = std::move(message);
  return false;
}

// Splits "host:port" / "[v6]:port" / "host" into host (normalize_host: lower case, brackets
// removed) and port text (empty when absent). The host must be one a certificate can name
// (is_valid_host), since an intercepted CONNECT gets a leaf for it.
bool split_authority(std::string_view a, std::string* host, std::string_view* port,
                     std::string* error) {
  if (a.empty()) return fail(error, "empty host");
  if (a.find('@') != std::string_view::npos) {
    return fail(error, "userinfo (a name before @) is not allowed");
  }
  std::string_view name = a;
  if (a.front() == '[') {
    const size_t close = a.find(']');
    if (close == std::string_view::npos) return fail(error, "unterminated IPv6 literal");
    name = a.substr(0, close + 1);
    const std::string_view rest = a.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return fail(error, "junk after the IPv6 literal");
    if (!rest.empty()) *port = rest.substr(1);
    if (!rest.empty() && port->empty()) return fail(error, "empty port");
  } else if (const size_t colon = a.rfind(':'); colon != std::string_view::npos) {
    name = a.substr(0, colon);
    *port = a.substr(colon + 1);
    if (port->empty()) return fail(error, "empty port");
  }
  if (name.empty()) return fail(error, "empty host");
  const bool bracketed = name.front() == '[';
  if (bracketed ? !is_ip_literal(name) : !is_valid_host(name)) {
    return fail(error, bracketed ? "malformed IPv6 literal"
                                 : "host is not a DNS name (labels of letters, digits, '-' or "
                                   "'_', at most 253 characters) or an IP address");
  }
  *host = normalize_host(name);
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
