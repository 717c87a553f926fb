// Reading the HTTP heads the proxy captured (start line, header lines, blank line) back into
// parts: for the content types and status the index keeps, and the header lists the API
// returns. Lenient by design: a stored head is shown as it was, never rejected.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lp::logsrv {

struct HttpHead {
  std::string start_line;                                    // "POST /v1/x HTTP/1.1"
  std::vector<std::pair<std::string, std::string>> headers;  // in order, repeats kept
};

// Splits on CRLF (bare LF tolerated) up to the blank line or the end of `raw`. Lines without
// a colon are skipped; values are trimmed of surrounding spaces and tabs.
HttpHead parse_http_head(std::string_view raw);

// The first value of header `name` (ASCII case-insensitive), or nullopt.
std::optional<std::string> header_value(const HttpHead& head, std::string_view name);

// An Accept-Encoding value without the elements naming `coding` (ASCII case-insensitive,
// parameters such as ";q=0.9" going with their element): "gzip, deflate, br" without "br" is
// "gzip, deflate". Other elements are kept as written, joined by ", ".
std::string without_coding(std::string_view accept_encoding, std::string_view coding);

// 200 for "HTTP/1.1 200 OK"; nullopt when the start line is not a status line.
std::optional<int> status_code(std::string_view start_line);

}  // namespace lp::logsrv
