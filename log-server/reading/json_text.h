// Parsing a stored body or event data as JSON, for derivation and display. nlohmann's parser
// takes a NUL byte as the end of its input, so "{}\0rest" would read as {} and hide the rest.
// JSON text never holds a raw NUL (RFC 8259: control characters inside strings are escaped and
// NUL is not whitespace), so text holding one is refused as not JSON and is shown as bytes.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

namespace lp::logsrv::reading {

// The parsed value, or a discarded value (is_discarded()) when `text` is not JSON. Never throws.
inline nlohmann::ordered_json parse_json_text(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) {
    return nlohmann::ordered_json(nlohmann::ordered_json::value_t::discarded);
  }
  return nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
}

}  // namespace lp::logsrv::reading
