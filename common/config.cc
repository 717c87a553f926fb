#include "common/config.h"
#include "common/ascii.h"
#include "common/host_pattern.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

namespace lp {
namespace {

// Where a problem is, so every message has the same `FILE:LINE: route 'NAME': PROBLEM` shape.
struct Context {
  const std::string& source;
  std::string route;  // empty when the problem is not about a route
  bool expand_env = true;
};

[[noreturn]] void fail(const Context& ctx, int line, const std::string& problem) {
  std::string msg = ctx.source;
  if (line > 0) msg += ":" + std::to_string(line);
  msg += ": ";
  if (!ctx.route.empty()) msg += "route '" + ctx.route + "': ";
  msg += problem;
  // The message must stay on one line; a YAML scalar can carry newlines into it.
  for (char& c : msg) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  throw ConfigError(msg);
}

int line_of(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

// One entry of a mapping. A null or collection value's mark points past the key (yaml-cpp puts
// an empty value on the next token), so errors about those are reported at the key's line.
struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;

  int line() const { return value.IsScalar() ? line_of(value) : line_of(key_node); }
};

std::string in_quotes(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return in_quotes(node.Scalar());
    default:
      return "nothing";
  }
}

std::string join_keys(std::initializer_list<std::string_view> keys) {
  std::string out;
  size_t i = 0;
  for (std::string_view k : keys) {
    if (i > 0) out += (i + 1 == keys.size()) ? " or " : ", ";
    out += k;
    ++i;
  }
  return out;
}

// Walks a mapping once in file order. yaml-cpp 0.7 keeps both entries of a duplicated key and
// lookups would silently pick one, so duplicates and unknown keys are rejected here instead.
// `where` names the mapping in messages ("in server"); empty inside a route, whose name the
// context already carries. An empty `known` accepts any key (the route names).
void for_each_entry(const Context& ctx, const YAML::Node& map, const std::string& where,
                    std::initializer_list<std::string_view> known,
                    const std::function<void(const Entry&)>& handle) {
  const std::string suffix = where.empty() ? "" : " " + where;
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    Entry entry{"", it->first, it->second};
    if (!entry.key_node.IsScalar()) {
      fail(ctx, line_of(entry.key_node),
           "keys must be plain names, got " + describe(entry.key_node) + " as a key" + suffix);
    }
    entry.key = entry.key_node.Scalar();
    if (!seen.insert(entry.key).second) {
      fail(ctx, line_of(entry.key_node), "duplicate key '" + entry.key + "'" + suffix);
    }
    if (known.size() > 0) {
      bool ok = false;
      for (std::string_view k : known) ok = ok || k == entry.key;
      if (!ok) {
        fail(ctx, line_of(entry.key_node),
             "unknown key '" + entry.key + "'" + suffix + " (expected " + join_keys(known) + ")");
      }
    }
    handle(entry);
  }
}

// A section may be left empty (`server:` with nothing under it) to keep its defaults.
bool section_present(const Context& ctx, const Entry& e, std::string_view what) {
  if (e.value.IsNull()) return false;
  if (!e.value.IsMap()) {
    fail(ctx, e.line(),
         e.key + ": expected a mapping of " + std::string(what) + ", got " + describe(e.value));
  }
  return true;
}

std::string get_string(const Context& ctx, const Entry& e, const std::string& label) {
  if (!e.value.IsScalar()) {
    fail(ctx, e.line(), label + ": expected a string, got " + describe(e.value));
  }
  std::string s = e.value.Scalar();
  if (s.empty()) fail(ctx, e.line(), label + ": must not be empty");
  return s;
}

bool get_bool(const Context& ctx, const Entry& e, const std::string& label) {
  bool b = false;
  if (!e.value.IsScalar() || !YAML::convert<bool>::decode(e.value, b)) {
    fail(ctx, e.line(), label + ": expected true or false, got " + describe(e.value));
  }
  return b;
}

// Parsed by hand rather than with YAML::convert<int>, which also takes "0x10", "1e3" and
// leading whitespace; a port or a limit should read exactly as written.
long long get_int(const Context& ctx, const Entry& e, const std::string& label, long long min,
                  long long max) {
  if (!e.value.IsScalar()) {
    fail(ctx, e.line(), label + ": expected an integer, got " + describe(e.value));
  }
  const std::string& s = e.value.Scalar();
  long long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || end != s.data() + s.size() ||
      (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    fail(ctx, e.line(), label + ": expected an integer, got " + in_quotes(s));
  }
  if (ec == std::errc::result_out_of_range || v < min || v > max) {
    fail(ctx, e.line(),
         label + ": " + s + " is out of range (" + std::to_string(min) + "-" + std::to_string(max) +
             ")");
  }
  return v;
}

std::chrono::milliseconds get_duration(const Context& ctx, const Entry& e, const std::string& label,
                                       bool allow_zero) {
  if (!e.value.IsScalar()) {
    fail(ctx, e.line(), label + ": expected a duration, got " + describe(e.value));
  }
  std::optional<std::chrono::milliseconds> d = parse_duration(e.value.Scalar());
  if (!d) {
    fail(ctx, e.line(),
         label + ": " + in_quotes(e.value.Scalar()) +
             " is not a duration (use e.g. \"300ms\", \"30s\", \"5m\", \"1h\" or seconds)");
  }
  if (d->count() == 0 && !allow_zero) {
    fail(ctx, e.line(), label + ": must be greater than 0");
  }
  return *d;
}

size_t get_byte_size(const Context& ctx, const Entry& e, const std::string& label, size_t min,
                     size_t max, const std::string& range_text) {
  if (!e.value.IsScalar()) {
    fail(ctx, e.line(), label + ": expected a size, got " + describe(e.value));
  }
  std::optional<size_t> n = parse_byte_size(e.value.Scalar());
  if (!n) {
    fail(ctx, e.line(),
         label + ": " + in_quotes(e.value.Scalar()) +
             " is not a size (use e.g. \"64KiB\", \"1MiB\" or a number of bytes)");
  }
  if (*n < min || *n > max) {
    fail(ctx, e.line(), label + ": " + e.value.Scalar() + " is out of range (" + range_text + ")");
  }
  return *n;
}

// parse_url's sentences start with the quoted URL, so the key reads as the subject:
// `destination "ftp://x" has scheme "ftp"; ...`.
Url get_url(const Context& ctx, const Entry& e, const std::string& label) {
  std::string text = get_string(ctx, e, label);
  std::string error;
  std::optional<Url> url = parse_url(text, &error);
  if (!url) fail(ctx, e.line(), label + " " + error);
  return *url;
}

// Checked at load time so a typo fails at startup, not on the first HTTPS request.
void check_readable_file(const Context& ctx, const Entry& e, const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    fail(ctx, e.line(), "ca_file " + in_quotes(path) + " is a directory, not a PEM file");
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) {
    int err = errno;
    fail(ctx, e.line(),
         "ca_file " + in_quotes(path) +
             " cannot be read: " + (err != 0 ? std::strerror(err) : "cannot open file"));
  }
  if (in.peek() == std::ifstream::traits_type::eof()) {
    fail(ctx, e.line(), "ca_file " + in_quotes(path) + " is empty");
  }
}

// A list of host patterns (common/host_pattern.h), each checked now so a typo fails at startup
// instead of silently intercepting or bypassing nothing.
std::vector<std::string> get_host_patterns(const Context& ctx, const Entry& e,
                                           const std::string& label) {
  if (!e.value.IsSequence()) {
    fail(ctx, e.line(), label + ": expected a list of host patterns, got " + describe(e.value));
  }
  std::vector<std::string> out;
  for (const auto& item : e.value) {
    const int line = line_of(item) > 0 ? line_of(item) : e.line();
    if (!item.IsScalar()) {
      fail(ctx, line, label + ": expected a host pattern, got " + describe(item));
    }
    if (std::optional<std::string> problem = host_pattern_problem(item.Scalar())) {
      fail(ctx, line, label + ": " + in_quotes(item.Scalar()) + " " + *problem);
    }
    out.push_back(item.Scalar());
  }
  return out;
}

// Only the shape of an upstream proxy URL is checked here: scheme, host and port. Credentials
// (user:password@) are allowed, since proxies that need them are common.
std::optional<std::string> upstream_proxy_problem(std::string_view url) {
  std::string_view rest;
  if (ascii_istarts_with(url, "http://")) {
    rest = url.substr(7);
  } else if (ascii_istarts_with(url, "socks5://")) {
    rest = url.substr(9);
  } else {
    return std::string("must start with http:// or socks5://");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != std::string_view::npos) return std::string("has a path");
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || (rest.front() == '[' && rest.back() == ']')) {
    return std::string("has no port");
  }
  std::string_view host = rest.substr(0, colon);
  std::string_view port = rest.substr(colon + 1);
  if (host.empty()) return std::string("has no host");
  if (host.front() != '[' && host.find(':') != std::string_view::npos) {
    return std::string("has an invalid host (write an IPv6 address in brackets)");
  }
  if (host.front() == '[' ? !is_ip_literal(host) || host.back() != ']' : !is_valid_host(host)) {
    return std::string("has an invalid host");
  }
  int value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value < 1 ||
      value > 65535) {
    return std::string("has an invalid port");
  }
  return std::nullopt;
}

std::string get_upstream_proxy(const Context& ctx, const Entry& e, const std::string& label) {
  std::string url = get_string(ctx, e, label);
  if (std::optional<std::string> problem = upstream_proxy_problem(url)) {
    fail(ctx, e.line(),
         label + " " + in_quotes(url) + " " + *problem +
             " (expected http://HOST:PORT or socks5://HOST:PORT)");
  }
  return url;
}

void parse_server(const Context& ctx, const YAML::Node& node, ServerConfig& out) {
  int admin_port_line = 0;
  for_each_entry(
      ctx, node, "in server",
      {"host", "port", "not_found", "upstream_timeout", "connect_timeout", "idle_timeout",
       "header_timeout", "max_header_bytes", "max_request_body_bytes", "max_connections", "threads",
       "admin_host", "admin_port", "upstream_proxy", "upstream_proxy_from_env", "no_proxy"},
      [&](const Entry& e) {
        const std::string label = "server." + e.key;
        if (e.key == "host") {
          out.host = get_string(ctx, e, label);
        } else if (e.key == "port") {
          out.port = static_cast<int>(get_int(ctx, e, label, 0, 65535));
        } else if (e.key == "not_found") {
          out.not_found = get_string(ctx, e, label);
          if (out.not_found.front() != '/') {
            fail(ctx, e.line(), label + ": " + in_quotes(out.not_found) + " must start with '/'");
          }
        } else if (e.key == "upstream_timeout") {
          out.upstream_timeout = get_duration(ctx, e, label, /*allow_zero=*/true);
        } else if (e.key == "connect_timeout") {
          out.connect_timeout = get_duration(ctx, e, label, false);
        } else if (e.key == "idle_timeout") {
          out.idle_timeout = get_duration(ctx, e, label, false);
        } else if (e.key == "header_timeout") {
          out.header_timeout = get_duration(ctx, e, label, false);
        } else if (e.key == "max_header_bytes") {
          out.max_header_bytes = get_byte_size(ctx, e, label, 1024, 1024 * 1024, "1KiB-1MiB");
        } else if (e.key == "max_request_body_bytes") {
          out.max_request_body_bytes =
              get_byte_size(ctx, e, label, 0, size_t{1} << 50, "0 for unlimited, up to 1024TiB");
        } else if (e.key == "max_connections") {
          out.max_connections = static_cast<size_t>(get_int(ctx, e, label, 1, 1000000));
        } else if (e.key == "threads") {
          out.threads = static_cast<size_t>(get_int(ctx, e, label, 0, 1024));
        } else if (e.key == "admin_host") {
          out.admin_host = get_string(ctx, e, label);
        } else if (e.key == "admin_port") {
          out.admin_port = static_cast<int>(get_int(ctx, e, label, 0, 65535));
          admin_port_line = e.line();
        } else if (e.key == "upstream_proxy") {
          out.upstream_proxy = get_upstream_proxy(ctx, e, label);
        } else if (e.key == "upstream_proxy_from_env") {
          out.upstream_proxy_from_env = get_bool(ctx, e, label);
        } else if (e.key == "no_proxy") {
          out.no_proxy = get_host_patterns(ctx, e, label);
        }
      });
  // The proxied listener belongs to the routes (a catch-all route owns every path there).
  if (out.admin_port && *out.admin_port != 0 && *out.admin_port == out.port) {
    fail(ctx, admin_port_line,
         "server.admin_port: " + std::to_string(out.port) +
             " is server.port too; the admin "
             "listener needs a port of its own");
  }
}

// A list of header names: each must be an HTTP token, so a typo cannot silently match nothing
// because of stray spaces or a colon.
std::vector<std::string> get_header_names(const Context& ctx, const Entry& e,
                                          const std::string& label) {
  if (!e.value.IsSequence()) {
    fail(ctx, e.line(), label + ": expected a list of header names, got " + describe(e.value));
  }
  std::vector<std::string> names;
  for (const auto& item : e.value) {
    int line = line_of(item);
    if (!item.IsScalar() || item.Scalar().empty()) {
      fail(ctx, line, label + ": expected a header name, got " + describe(item));
    }
    const std::string& name = item.Scalar();
    for (char c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c)) &&
          std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
        fail(ctx, line, label + ": " + in_quotes(name) + " is not a valid header name");
      }
    }
    names.push_back(name);
  }
  return names;
}

void parse_logging(const Context& ctx, const YAML::Node& node, LoggingConfig& out) {
  for_each_entry(
      ctx, node, "in logging",
      {"console", "server_url", "default", "console_format", "redact", "redact_headers",
       "queue_bytes", "spool_dir", "spool_max_bytes", "batch_bytes", "batch_interval"},
      [&](const Entry& e) {
        const std::string label = "logging." + e.key;
        if (e.key == "console") {
          out.console = get_bool(ctx, e, label);
        } else if (e.key == "console_format") {
          const std::string format = get_string(ctx, e, label);
          if (format == "text") {
            out.console_format = LoggingConfig::ConsoleFormat::kText;
          } else if (format == "json") {
            out.console_format = LoggingConfig::ConsoleFormat::kJson;
          } else {
            fail(ctx, e.line(), label + ": " + in_quotes(format) + " is not text or json");
          }
        } else if (e.key == "server_url") {
          get_url(ctx, e, label);
          out.server_url = e.value.Scalar();
        } else if (e.key == "default") {
          out.default_capture = get_bool(ctx, e, label);
        } else if (e.key == "redact") {
          out.redact = get_bool(ctx, e, label);
        } else if (e.key == "redact_headers") {
          out.redact_headers = get_header_names(ctx, e, label);
        } else if (e.key == "queue_bytes") {
          out.queue_bytes = get_byte_size(ctx, e, label, 1 << 20, size_t{1} << 34, "1MiB-16GiB");
        } else if (e.key == "spool_dir") {
          out.spool_dir = get_string(ctx, e, label);
        } else if (e.key == "spool_max_bytes") {
          out.spool_max_bytes = get_byte_size(ctx, e, label, 0, size_t{1} << 44, "0-16TiB");
        } else if (e.key == "batch_bytes") {
          out.batch_bytes = get_byte_size(ctx, e, label, 4096, 16 << 20, "4KiB-16MiB");
        } else if (e.key == "batch_interval") {
          out.batch_interval = get_duration(ctx, e, label, /*allow_zero=*/false);
        }
      });
}

void parse_retention(const Context& ctx, const YAML::Node& node, RetentionConfig& out) {
  for_each_entry(ctx, node, "in log_server.retention", {"max_age", "max_bytes"},
                 [&](const Entry& e) {
                   const std::string label = "log_server.retention." + e.key;
                   if (e.key == "max_age") {
                     out.max_age = get_duration(ctx, e, label, /*allow_zero=*/false);
                   } else if (e.key == "max_bytes") {
                     out.max_bytes = get_byte_size(ctx, e, label, 1, SIZE_MAX, "1 byte or more");
                   }
                 });
}

void parse_log_server(const Context& ctx, const YAML::Node& node, LogServerConfig& out) {
  for_each_entry(
      ctx, node, "in log_server",
      {"host", "port", "data_dir", "auth_token", "max_decoded_bytes", "nice", "retention"},
      [&](const Entry& e) {
        const std::string label = "log_server." + e.key;
        if (e.key == "max_decoded_bytes") {
          out.max_decoded_bytes = get_byte_size(ctx, e, label, 1024, SIZE_MAX, "1KiB or more");
        } else if (e.key == "nice") {
          out.nice = static_cast<int>(get_int(ctx, e, label, 0, 19));
        } else if (e.key == "retention") {
          parse_retention(ctx, e.value, out.retention);
        } else if (e.key == "auth_token") {
          out.auth_token = get_string(ctx, e, label);
        } else if (e.key == "host") {
          out.host = get_string(ctx, e, label);
        } else if (e.key == "port") {
          out.port = static_cast<int>(get_int(ctx, e, label, 0, 65535));
        } else if (e.key == "data_dir") {
          out.data_dir = get_string(ctx, e, label);
        }
      });
}

bool is_lower_hex_sha256(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

ForwardProxyUser parse_forward_user(const Context& ctx, const YAML::Node& node,
                                    const std::string& label, int fallback_line) {
  const int line = line_of(node) > 0 ? line_of(node) : fallback_line;
  if (!node.IsMap()) {
    fail(ctx, line,
         label + ": expected a mapping with name and password_sha256 or password_env, got " +
             describe(node));
  }
  ForwardProxyUser user;
  for_each_entry(ctx, node, "in " + label, {"name", "password_sha256", "password_env"},
                 [&](const Entry& e) {
                   if (e.key == "name") {
                     user.name = get_string(ctx, e, label + ".name");
                     // Basic credentials are "name:password"; a colon would split elsewhere.
                     if (user.name.find(':') != std::string::npos) {
                       fail(ctx, e.line(), label + ".name: must not contain ':'");
                     }
                   } else if (e.key == "password_sha256") {
                     user.password_sha256 = ascii_lowered(get_string(ctx, e, label + "." + e.key));
                     if (!is_lower_hex_sha256(user.password_sha256)) {
                       fail(ctx, e.line(),
                            label +
                                ".password_sha256: expected 64 hex digits (the output of "
                                "`printf %s PASSWORD | sha256sum`)");
                     }
                   } else if (e.key == "password_env") {
                     user.password_env = get_string(ctx, e, label + "." + e.key);
                   }
                 });
  if (user.name.empty()) fail(ctx, line, label + ": missing required key 'name'");
  if (user.password_sha256.empty() == user.password_env.empty()) {
    fail(ctx, line,
         label + " ('" + user.name + "'): set exactly one of password_sha256 and password_env");
  }
  return user;
}

void parse_forward_proxy(const Context& ctx, const YAML::Node& node, ForwardProxyConfig& out) {
  for_each_entry(
      ctx, node, "in forward_proxy", {"enabled", "intercept", "exclude", "users", "ca_dir"},
      [&](const Entry& e) {
        const std::string label = "forward_proxy." + e.key;
        if (e.key == "enabled") {
          out.enabled = get_bool(ctx, e, label);
        } else if (e.key == "intercept") {
          out.intercept = get_host_patterns(ctx, e, label);
        } else if (e.key == "exclude") {
          out.exclude = get_host_patterns(ctx, e, label);
        } else if (e.key == "ca_dir") {
          out.ca_dir = get_string(ctx, e, label);
        } else if (e.key == "users") {
          if (!e.value.IsSequence()) {
            fail(ctx, e.line(), label + ": expected a list of users, got " + describe(e.value));
          }
          std::set<std::string> names;
          for (const auto& item : e.value) {
            const std::string item_label = label + "[" + std::to_string(out.users.size()) + "]";
            ForwardProxyUser user = parse_forward_user(ctx, item, item_label, e.line());
            if (!names.insert(user.name).second) {
              fail(ctx, line_of(item) > 0 ? line_of(item) : e.line(),
                   item_label + ": user '" + user.name + "' is listed twice");
            }
            out.users.push_back(std::move(user));
          }
        }
      });
}

// routes.NAME.headers: a mapping of header name to value, with ${ENV} expanded now so a
// missing key is a startup error rather than a request sent without credentials.
std::vector<std::pair<std::string, std::string>> get_injected_headers(const Context& ctx,
                                                                      const Entry& e) {
  if (!e.value.IsMap()) {
    fail(ctx, e.line(),
         "headers: expected a mapping of header name to value, got " + describe(e.value));
  }
  std::vector<std::pair<std::string, std::string>> out;
  for_each_entry(ctx, e.value, "in headers", {}, [&](const Entry& h) {
    const std::string label = "headers." + h.key;
    for (char c : h.key) {
      if (!std::isalnum(static_cast<unsigned char>(c)) &&
          std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
        fail(ctx, h.line(), "headers: " + in_quotes(h.key) + " is not a valid header name");
      }
    }
    std::string raw = get_string(ctx, h, label);
    if (!ctx.expand_env) {
      out.emplace_back(h.key, raw);
      return;
    }
    std::string error;
    auto value = expand_env(
        raw, [](const std::string& n) { return std::getenv(n.c_str()); }, &error);
    if (!value) fail(ctx, h.line(), label + ": " + error);
    for (char c : *value) {
      auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) {
        fail(ctx, h.line(), label + ": the value contains a control character");
      }
    }
    out.emplace_back(h.key, *value);
  });
  return out;
}

RouteConfig parse_route(const Context& outer, const Entry& route_entry) {
  Context ctx{outer.source, route_entry.key, outer.expand_env};
  RouteConfig route;
  route.name = route_entry.key;
  route.line = line_of(route_entry.key_node);
  if (route.name.empty()) fail(outer, route.line, "routes: a route name must not be empty");
  if (!route_entry.value.IsMap()) {
    fail(ctx, route_entry.line(),
         "expected a mapping with pattern and destination, got " + describe(route_entry.value));
  }
  bool has_pattern = false;
  bool has_destination = false;
  for_each_entry(ctx, route_entry.value, "",
                 {"pattern", "destination", "logging", "ca_file", "insecure_skip_verify", "headers",
                  "upstream_proxy"},
                 [&](const Entry& e) {
                   if (e.key == "pattern") {
                     route.pattern = get_string(ctx, e, e.key);
                     has_pattern = true;
                   } else if (e.key == "destination") {
                     route.destination = get_url(ctx, e, e.key);
                     has_destination = true;
                   } else if (e.key == "logging") {
                     route.logging = get_bool(ctx, e, e.key);
                   } else if (e.key == "ca_file") {
                     route.ca_file = get_string(ctx, e, e.key);
                     check_readable_file(ctx, e, route.ca_file);
                   } else if (e.key == "insecure_skip_verify") {
                     route.insecure_skip_verify = get_bool(ctx, e, e.key);
                   } else if (e.key == "headers") {
                     route.headers = get_injected_headers(ctx, e);
                   } else if (e.key == "upstream_proxy") {
                     const bool direct = e.value.IsScalar() &&
                                         (e.value.Scalar().empty() || e.value.Scalar() == "none");
                     route.upstream_proxy = direct ? "" : get_upstream_proxy(ctx, e, e.key);
                   }
                 });
  if (!has_pattern) fail(ctx, route.line, "missing required key 'pattern'");
  if (!has_destination) fail(ctx, route.line, "missing required key 'destination'");
  return route;
}

Config parse_document(const Context& ctx, const YAML::Node& root) {
  Config config;
  config.source = ctx.source;
  if (root.IsNull()) return config;
  if (!root.IsMap()) {
    fail(ctx, line_of(root),
         "expected a mapping with server, logging, routes and log_server at the top level, got " +
             describe(root));
  }
  for_each_entry(
      ctx, root, "at the top level", {"server", "logging", "routes", "log_server", "forward_proxy"},
      [&](const Entry& e) {
        if (e.key == "server") {
          if (section_present(ctx, e, "server settings")) {
            parse_server(ctx, e.value, config.server);
          }
        } else if (e.key == "logging") {
          if (section_present(ctx, e, "logging settings")) {
            parse_logging(ctx, e.value, config.logging);
          }
        } else if (e.key == "log_server") {
          if (section_present(ctx, e, "log server settings")) {
            parse_log_server(ctx, e.value, config.log_server);
          }
        } else if (e.key == "forward_proxy") {
          if (section_present(ctx, e, "forward proxy settings")) {
            parse_forward_proxy(ctx, e.value, config.forward_proxy);
          }
        } else if (e.key == "routes") {
          if (section_present(ctx, e, "route names to routes")) {
            for_each_entry(ctx, e.value, "in routes", {},
                           [&](const Entry& r) { config.routes.push_back(parse_route(ctx, r)); });
          }
        }
      });
  return config;
}

// Digits, then an optional unit: the shape shared by durations and sizes. Returns false on
// anything else, including overflow.
bool split_number(std::string_view& text, unsigned long long& value) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  auto [p, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || p == begin) return false;
  text.remove_prefix(static_cast<size_t>(p - begin));
  return true;
}

bool multiply(unsigned long long a, unsigned long long b, unsigned long long& out) {
  if (b != 0 && a > std::numeric_limits<unsigned long long>::max() / b) return false;
  out = a * b;
  return true;
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  using Rep = std::chrono::milliseconds::rep;
  unsigned long long first = 0;
  std::string_view rest = text;
  if (!split_number(rest, first)) return std::nullopt;
  if (rest.empty()) {
    unsigned long long ms = 0;
    if (!multiply(first, 1000, ms) ||
        ms > static_cast<unsigned long long>(std::numeric_limits<Rep>::max())) {
      return std::nullopt;
    }
    return std::chrono::milliseconds(static_cast<Rep>(ms));
  }
  // Go-style compound values such as "1m30s" are accepted: each part is digits plus a unit.
  unsigned long long total = 0;
  rest = text;
  while (!rest.empty()) {
    unsigned long long n = 0;
    if (!split_number(rest, n)) return std::nullopt;
    unsigned long long scale = 0;
    if (rest.starts_with("ms")) {
      scale = 1;
      rest.remove_prefix(2);
    } else if (rest.starts_with("s")) {
      scale = 1000;
      rest.remove_prefix(1);
    } else if (rest.starts_with("m")) {
      scale = 60 * 1000;
      rest.remove_prefix(1);
    } else if (rest.starts_with("h")) {
      scale = 60 * 60 * 1000;
      rest.remove_prefix(1);
    } else if (rest.starts_with("d")) {  // retention ages: "30d"
      scale = 24 * 60 * 60 * 1000;
      rest.remove_prefix(1);
    } else {
      return std::nullopt;
    }
    unsigned long long part = 0;
    if (!multiply(n, scale, part) ||
        total > std::numeric_limits<unsigned long long>::max() - part) {
      return std::nullopt;
    }
    total += part;
  }
  if (total > static_cast<unsigned long long>(std::numeric_limits<Rep>::max())) return std::nullopt;
  return std::chrono::milliseconds(static_cast<Rep>(total));
}

std::optional<size_t> parse_byte_size(std::string_view text) {
  unsigned long long n = 0;
  std::string_view unit = text;
  if (!split_number(unit, n)) return std::nullopt;
  static constexpr std::pair<std::string_view, unsigned long long> kUnits[] = {
      {"", 1},
      {"B", 1},
      {"KB", 1000ULL},
      {"MB", 1000ULL * 1000},
      {"GB", 1000ULL * 1000 * 1000},
      {"TB", 1000ULL * 1000 * 1000 * 1000},
      {"KiB", 1ULL << 10},
      {"MiB", 1ULL << 20},
      {"GiB", 1ULL << 30},
      {"TiB", 1ULL << 40},
  };
  for (const auto& [name, scale] : kUnits) {
    if (!iequals(unit, name)) continue;
    unsigned long long bytes = 0;
    if (!multiply(n, scale, bytes) || bytes > std::numeric_limits<size_t>::max()) {
      return std::nullopt;
    }
    return static_cast<size_t>(bytes);
  }
  return std::nullopt;
}

namespace {

// Counts parser events and gives up past a bound. yaml-cpp 0.7 loops forever on some malformed
// flow collections (",\n[a -: 2" makes it emit nodes until memory runs out), so the text is first
// run through this bounded pass; a real config has a few hundred events.
class BoundedEvents : public YAML::EventHandler {
 public:
  static constexpr long kMaxEvents = 200000;
  struct TooMany {
    int line;
  };
  void OnDocumentStart(const YAML::Mark& m) override { count(m); }
  void OnDocumentEnd() override { count(YAML::Mark::null_mark()); }
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { count(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { count(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                const std::string&) override {
    count(m);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    count(m);
  }
  void OnSequenceEnd() override { count(YAML::Mark::null_mark()); }
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    count(m);
  }
  void OnMapEnd() override { count(YAML::Mark::null_mark()); }

 private:
  void count(const YAML::Mark& m) {
    if (!m.is_null()) line_ = m.line + 1;
    if (++events_ > kMaxEvents) throw TooMany{line_};
  }
  long events_ = 0;
  int line_ = 0;
};

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const LoadOptions& options) {
  const Context ctx{source, "", options.expand_env};
  try {
    {
      std::istringstream in(yaml_text);
      YAML::Parser parser(in);
      BoundedEvents bounded;
      try {
        while (parser.HandleNextDocument(bounded)) {
        }
      } catch (const BoundedEvents::TooMany& e) {
        fail(ctx, e.line,
             "invalid YAML: more than " + std::to_string(BoundedEvents::kMaxEvents) +
                 " nodes (malformed collection?)");
      }
    }
    std::vector<YAML::Node> docs = YAML::LoadAll(yaml_text);
    if (docs.empty()) {
      Config config;
      config.source = source;
      return config;
    }
    if (docs.size() > 1) {
      fail(ctx, 0,
           "the file holds " + std::to_string(docs.size()) +
               " YAML documents (separated by ---); a config is a single document");
    }
    return parse_document(ctx, docs.front());
  } catch (const ConfigError&) {
    throw;
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own text for this ("bad file") does not say what is wrong.
    fail(ctx, e.mark.is_null() ? 0 : e.mark.line + 1, "invalid YAML: nested too deeply");
  } catch (const YAML::Exception& e) {
    fail(ctx, e.mark.is_null() ? 0 : e.mark.line + 1, "invalid YAML: " + e.msg);
  } catch (const std::exception& e) {
    // Callers handle ConfigError only (exit 2 with the message); nothing else may escape.
    fail(ctx, 0, std::string("cannot load config: ") + e.what());
  }
}

std::optional<std::string> expand_env(std::string_view text,
                                      const std::function<const char*(const std::string&)>& lookup,
                                      std::string* error) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '$') {
      out.push_back('$');
      ++i;
      continue;
    }
    if (i + 1 >= text.size() || text[i + 1] != '{') {
      *error = "a '$' must start ${NAME} (write $$ for a literal '$')";
      return std::nullopt;
    }
    size_t close = text.find('}', i + 2);
    std::string name(text.substr(i + 2, close == std::string_view::npos ? 0 : close - i - 2));
    bool valid = close != std::string_view::npos && !name.empty() &&
                 !std::isdigit(static_cast<unsigned char>(name[0]));
    for (char c : name) valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!valid) {
      *error = "malformed environment reference (expected ${NAME})";
      return std::nullopt;
    }
    const char* value = lookup(name);
    if (!value) {
      *error = "environment variable " + name + " is not set";
      return std::nullopt;
    }
    out += value;
    i = close;
  }
  return out;
}

Config load_config_file(const std::string& path, const LoadOptions& options) {
  std::string text;
  errno = 0;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    throw ConfigError(path + ": cannot read config: " + std::strerror(errno));
  }
  char buf[8192];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  // fopen accepts a directory; the failure only shows up on read.
  int err = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (err != 0) throw ConfigError(path + ": cannot read config: " + std::strerror(err));
  Config config = parse_config(text, path, options);
  if (config.log_server.auth_token.empty()) {
    if (const char* token = std::getenv("LOG_SERVER_TOKEN"); token && *token) {
      config.log_server.auth_token = token;
    }
  }
  return config;
}

}  // namespace lp
