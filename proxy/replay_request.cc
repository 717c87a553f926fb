#include "proxy/replay_request.h"

#include <algorithm>

#include "common/ascii.h"
#include "proxy/forward_headers.h"
#include "proxy/redaction.h"

namespace lp {

std::optional<ReplayRequest> build_replay_request(std::string_view stored,
                                                  const ReplayOptions& options,
                                                  std::string* error) {
  RequestHead stored_head;
  HeadLimits limits;
  limits.max_head_bytes = 1 << 20;
  limits.max_request_line = 1 << 20;
  ParseResult parsed = parse_request_head(stored, limits, &stored_head);
  if (parsed.state != ParseResult::State::kDone) {
    *error = parsed.state == ParseResult::State::kIncomplete
                 ? "the stored request has no complete HTTP head"
                 : "the stored request is malformed: " + parsed.error;
    return std::nullopt;
  }
  const std::string* proxy_path = find_header(stored_head.headers, "X-Proxy-Path");
  // It becomes the request target: origin-form, or absolute-form for a capture the forward
  // proxy made; visible ASCII only (a space would split the request line the replay sends).
  auto is_target_char = [](char c) { return c > 0x20 && c < 0x7f; };
  if (!proxy_path || proxy_path->empty() ||
      !(proxy_path->front() == '/' || ascii_istarts_with(*proxy_path, "http://") ||
        ascii_istarts_with(*proxy_path, "https://")) ||
      !std::all_of(proxy_path->begin(), proxy_path->end(), is_target_char)) {
    *error =
        "the stored request has no valid X-Proxy-Path header, so it cannot be re-sent "
        "through the proxy";
    return std::nullopt;
  }
  ReplayRequest out;
  out.body = stored.substr(parsed.consumed);
  out.head.method = stored_head.method;
  out.head.target = *proxy_path;
  out.head.minor_version = 1;
  Redactor masked(true, options.redacted_names);
  auto overridden = [&](std::string_view name) {
    for (const auto& o : options.overrides) {
      if (iequals(o.name, name)) return true;
    }
    return false;
  };
  for (const auto& h : stored_head.headers) {
    if (iequals(h.name, "Host") || iequals(h.name, "Content-Length") ||
        iequals(h.name, "X-Forwarded-For") || iequals(h.name, "X-Forwarded-Host") ||
        iequals(h.name, "X-Forwarded-Proto") || iequals(h.name, "X-Proxy-Path") ||
        iequals(h.name, "X-Replay-Of") || iequals(h.name, "Expect") ||
        is_hop_by_hop(h.name, stored_head.headers) || overridden(h.name)) {
      continue;
    }
    if (masked.applies_to(h.name) && h.value.find(kMask) != std::string::npos) continue;
    out.head.headers.push_back(h);
  }
  for (const auto& o : options.overrides) out.head.headers.push_back(o);
  out.head.headers.push_back({"Host", options.proxy_authority});
  if (!out.body.empty() || stored_head.method == "POST" || stored_head.method == "PUT" ||
      stored_head.method == "PATCH") {
    out.head.headers.push_back({"Content-Length", std::to_string(out.body.size())});
  }
  out.head.headers.push_back({"X-Replay-Of", options.original_id});
  return out;
}

std::optional<Header> parse_header_arg(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view name = text.substr(0, colon);
  std::string_view value = text.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  // Validate by parsing a one-header request: the same rules as on the wire.
  std::string probe =
      "GET / HTTP/1.1\r\nHost: x\r\n" + std::string(name) + ": " + std::string(value) + "\r\n\r\n";
  RequestHead head;
  if (parse_request_head(probe, HeadLimits{}, &head).state != ParseResult::State::kDone ||
      head.headers.size() != 2) {
    return std::nullopt;
  }
  return Header{std::string(name), std::string(value)};
}

}  // namespace lp
