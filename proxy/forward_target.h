// Where a forward-proxy request goes: the authority of a CONNECT ("host:port") or the origin
// of an absolute-form "http://host[:port]/path?query" target. Pure functions, no I/O; every
// refusal is a sentence naming the problem, fit for a 400 answer (and it never echoes
// userinfo, which could be a credential).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lp {

struct ForwardTarget {
  std::string host;  // lower case; an IPv6 literal without brackets
  uint16_t port = 0;
  bool tls = false;         // CONNECT: the client speaks TLS inside (https://)
  std::string origin_form;  // absolute-form only: "/path?query" as sent upstream

  // "host:port" as a CONNECT names it, IPv6 in brackets.
  std::string authority() const;
  // "https://host[:port]" or "http://host[:port]" (default port omitted).
  std::string origin() const;
};

// "host:port" with an explicit port 1-65535; host a DNS name (letters, digits, '-', '_',
// '.'; at most 253 characters), an IPv4 literal or a bracketed IPv6 literal.
std::optional<ForwardTarget> parse_connect_target(std::string_view target, std::string* error);

// "http(s)://host[:port][/path][?query]" (scheme in any case, no userinfo, no fragment).
// Clients send https:// through CONNECT; `logging-proxy replay` of an intercepted capture
// sends it as absolute-form, and the proxy then makes the TLS connection itself.
std::optional<ForwardTarget> parse_absolute_target(std::string_view target, std::string* error);

}  // namespace lp
