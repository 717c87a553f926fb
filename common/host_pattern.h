// Host patterns as the config writes them (forward_proxy.intercept / exclude, server.no_proxy):
// an exact host "api.openai.com", a wildcard "*.openai.com" that matches subdomains at any
// depth but not openai.com itself, or an IP literal ("127.0.0.1", "::1", "[::1]"). Never a
// scheme, a path or a port. Pure functions, no I/O, safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace lp {

// Why `pattern` is not a valid host pattern (a phrase to follow the quoted pattern, e.g.
// "has a port"), or nullopt when it is valid.
std::optional<std::string> host_pattern_problem(std::string_view pattern);

// The form hosts are compared and cached in: lowercase, one trailing dot dropped, an IPv6
// literal without brackets and in canonical text form ("0:0::1" -> "::1").
std::string normalize_host(std::string_view host);

// Whether `text` is an IPv4 literal or an IPv6 literal, the latter with or without brackets.
bool is_ip_literal(std::string_view text);

// Whether `host` (a DNS name or IP literal, without port) is a name a certificate can carry:
// an IP literal, or LDH/underscore labels of 1-63 characters, 253 in all. No wildcard.
bool is_valid_host(std::string_view host);

}  // namespace lp
