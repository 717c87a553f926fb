#include "common/host_pattern.h"

#include <arpa/inet.h>

#include "common/ascii.h"

namespace lp {
namespace {

// inet_pton reads a C string: text with a NUL inside must not pass for the address before it.
bool has_nul(std::string_view s) {
  return s.find('\0') != std::string_view::npos;
}

std::string_view strip_brackets(std::string_view s) {
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') return s.substr(1, s.size() - 2);
  return s;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

// A DNS name, already without its trailing dot.
bool is_dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!is_name_char(c) || ++label > 63) return false;
  }
  return label > 0;
}

std::string_view without_trailing_dot(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

}  // namespace

bool is_ip_literal(std::string_view text) {
  if (has_nul(text)) return false;
  const std::string s(strip_brackets(text));
  unsigned char buf[16];
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) return true;
  return s.size() == text.size() && inet_pton(AF_INET, s.c_str(), buf) == 1;  // no "[1.2.3.4]"
}

std::string normalize_host(std::string_view host) {
  const std::string inner(strip_brackets(host));
  unsigned char buf[16];
  if (!has_nul(inner) && inet_pton(AF_INET6, inner.c_str(), buf) == 1) {
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, buf, text, sizeof text) != nullptr) return text;
  }
  std::string out(without_trailing_dot(host));
  for (char& c : out) c = ascii_lower(c);
  return out;
}

bool is_valid_host(std::string_view host) {
  return is_ip_literal(host) || is_dns_name(without_trailing_dot(host));
}

std::optional<std::string> host_pattern_problem(std::string_view pattern) {
  if (pattern.empty()) return "is empty";
  for (char c : pattern) {
    if (c == ' ' || c == '\t') return "contains a space";
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "contains a control character";
  }
  if (pattern.find("://") != std::string_view::npos) return "has a scheme (write the host alone)";
  if (pattern.find('/') != std::string_view::npos) return "has a path (write the host alone)";
  if (is_ip_literal(pattern)) return std::nullopt;
  if (pattern.find(':') != std::string_view::npos) return "has a port (write the host alone)";
  std::string_view name = without_trailing_dot(pattern);
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (name.find('*') != std::string_view::npos) {
    return "has a '*' other than a leading \"*.\" (write \"*.example.com\" for its subdomains)";
  }
  if (!is_dns_name(name)) return "is not a host name or IP address";
  return std::nullopt;
}

}  // namespace lp
