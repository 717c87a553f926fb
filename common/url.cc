#include "common/url.h"
#include "common/ascii.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace lp {
namespace {

// RFC 3986 scheme syntax; anything else before "://" (a path, a query) means there is no scheme.
bool valid_scheme(std::string_view s) {
  if (s.empty() || !std::isalpha(static_cast<unsigned char>(s.front()))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  });
}

bool valid_host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

}  // namespace

std::string Url::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (!default_port()) h += ":" + std::to_string(port);
  return h;
}

std::string Url::origin() const {
  return scheme + "://" + authority();
}

std::string Url::to_string() const {
  std::string s = origin() + path;
  if (!query.empty()) s += "?" + query;
  return s;
}

std::optional<Url> parse_url(std::string_view text, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<Url> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  Url url;
  size_t sep = text.find("://");
  if (sep == std::string_view::npos || !valid_scheme(text.substr(0, sep))) {
    return fail("\"" + std::string(text) + "\" is not an absolute http(s) URL (missing scheme://)");
  }
  url.scheme = ascii_lowered(text.substr(0, sep));
  if (url.scheme != "http" && url.scheme != "https") {
    return fail("\"" + std::string(text) + "\" has scheme \"" + url.scheme +
                "\"; only http and https are supported");
  }
  std::string_view rest = text.substr(sep + 3);
  if (rest.find('#') != std::string_view::npos) {
    return fail("\"" + std::string(text) + "\" has a fragment (#...), which is not allowed");
  }
  size_t path_start = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_start);
  std::string_view path_and_query =
      path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
  if (authority.find('@') != std::string_view::npos) {
    return fail("\"" + std::string(text) +
                "\" contains user info (user@host), which is not allowed");
  }
  std::string_view host_part = authority;
  std::string_view port_part;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return fail("\"" + std::string(text) + "\" has an unterminated IPv6 literal");
    }
    host_part = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("\"" + std::string(text) + "\" has junk after ']'");
      port_part = after.substr(1);
      if (port_part.empty()) return fail("\"" + std::string(text) + "\" has an empty port");
    }
    if (host_part.empty()) return fail("\"" + std::string(text) + "\" has an empty host");
    for (char c : host_part) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        return fail("\"" + std::string(text) + "\" has an invalid IPv6 literal");
      }
    }
  } else {
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      host_part = authority.substr(0, colon);
      port_part = authority.substr(colon + 1);
      if (port_part.empty()) return fail("\"" + std::string(text) + "\" has an empty port");
    }
    if (host_part.empty()) return fail("\"" + std::string(text) + "\" has no host");
    for (char c : host_part) {
      if (!valid_host_char(c)) {
        return fail("\"" + std::string(text) + "\" has an invalid character '" + std::string(1, c) +
                    "' in its host");
      }
    }
  }
  url.host = ascii_lowered(host_part);
  url.port = url.tls() ? 443 : 80;
  if (!port_part.empty()) {
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port_part.data(), port_part.data() + port_part.size(), value);
    if (ec != std::errc() || p != port_part.data() + port_part.size() || value == 0 ||
        value > 65535) {
      return fail("\"" + std::string(text) + "\" has an invalid port \"" + std::string(port_part) +
                  "\" (expected 1-65535)");
    }
    url.port = static_cast<uint16_t>(value);
  }
  size_t q = path_and_query.find('?');
  url.path = std::string(path_and_query.substr(0, q));
  if (q != std::string_view::npos) url.query = std::string(path_and_query.substr(q + 1));
  if (url.path.empty()) url.path = "/";
  for (char c : path_and_query) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return fail("\"" + std::string(text) + "\" contains a space or control character");
    }
  }
  return url;
}

}  // namespace lp
