#include "log-server/http_head.h"

#include "common/ascii.h"

namespace lp::logsrv {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

HttpHead parse_http_head(std::string_view raw) {
  HttpHead head;
  bool first = true;
  while (!raw.empty()) {
    size_t nl = raw.find('\n');
    std::string_view line = raw.substr(0, nl);
    raw = nl == std::string_view::npos ? std::string_view() : raw.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (first) {
      head.start_line = std::string(line);
      first = false;
      continue;
    }
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    head.headers.emplace_back(std::string(trim(line.substr(0, colon))),
                              std::string(trim(line.substr(colon + 1))));
  }
  return head;
}

std::optional<std::string> header_value(const HttpHead& head, std::string_view name) {
  for (const auto& [n, v] : head.headers) {
    if (iequals(n, name)) return v;
  }
  return std::nullopt;
}

std::optional<int> status_code(std::string_view line) {
  if (!line.starts_with("HTTP/")) return std::nullopt;
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp + 4 > line.size()) return std::nullopt;
  int code = 0;
  for (size_t i = sp + 1; i < sp + 4; ++i) {
    char c = line[i];
    if (c < '0' || c > '9') return std::nullopt;
    code = code * 10 + (c - '0');
  }
  if (sp + 4 < line.size() && line[sp + 4] != ' ') return std::nullopt;
  if (code < 100) return std::nullopt;
  return code;
}

std::string without_coding(std::string_view accept_encoding, std::string_view coding) {
  std::string out;
  while (!accept_encoding.empty()) {
    const size_t comma = accept_encoding.find(',');
    std::string_view element = trim(accept_encoding.substr(0, comma));
    accept_encoding =
        comma == std::string_view::npos ? std::string_view() : accept_encoding.substr(comma + 1);
    const std::string_view name = trim(element.substr(0, element.find(';')));
    if (element.empty() || iequals(name, coding)) continue;
    if (!out.empty()) out += ", ";
    out += element;
  }
  return out;
}

}  // namespace lp::logsrv
