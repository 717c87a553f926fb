// Absolute http(s) URLs as used for route destinations and the log server address.
// Parsing is strict: scheme http or https, a host, an optional port, an optional path;
// no userinfo and no fragment. Pure functions, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lp {

struct Url {
  std::string scheme;  // "http" or "https", lower case
  std::string host;    // without brackets for IPv6 literals, lower case
  uint16_t port = 0;   // explicit port, or the scheme's default
  std::string path;    // starts with '/'; "/" when the URL had none
  std::string query;   // without the '?', may be empty

  bool tls() const { return scheme == "https"; }
  bool default_port() const { return port == (tls() ? 443 : 80); }
  // "host" or "host:port" (port omitted when default), IPv6 in brackets: the Host header value.
  std::string authority() const;
  // "scheme://authority": identifies a connection pool.
  std::string origin() const;
  std::string to_string() const;
};

// Returns the URL, or nullopt with *error set to a sentence naming the problem.
std::optional<Url> parse_url(std::string_view text, std::string* error);

}  // namespace lp
