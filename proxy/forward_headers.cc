#include "proxy/forward_headers.h"

#include <array>

namespace lp {
namespace {

bool always_hop_by_hop(std::string_view name) {
  static constexpr std::array<std::string_view, 7> kNames = {
      "Connection", "Keep-Alive",      "TE", "Trailer", "Transfer-Encoding",
      "Upgrade",    "Proxy-Connection"};
  for (auto n : kNames) {
    if (iequals(name, n)) return true;
  }
  return name.size() >= 6 && iequals(name.substr(0, 6), "Proxy-");
}

void add_framing(HeaderList* out, const BodyFraming& framing) {
  switch (framing.kind) {
    case BodyFraming::Kind::kLength:
      out->push_back({"Content-Length", std::to_string(framing.length)});
      break;
    case BodyFraming::Kind::kChunked:
      out->push_back({"Transfer-Encoding", "chunked"});
      break;
    case BodyFraming::Kind::kNone:
    case BodyFraming::Kind::kUntilClose:
      break;
  }
}

}  // namespace

bool is_hop_by_hop(std::string_view name, const HeaderList& headers) {
  if (always_hop_by_hop(name)) return true;
  return headers_have_token(headers, "Connection", name);
}

HeaderList upstream_request_headers(const HeaderList& in, const ForwardContext& ctx,
                                    const BodyFraming& framing) {
  HeaderList out;
  out.reserve(in.size() + 5);
  std::string forwarded_for;
  const std::string* client_host = nullptr;
  for (const auto& h : in) {
    if (iequals(h.name, "Host")) {
      client_host = &h.value;
      continue;
    }
    if (iequals(h.name, "X-Forwarded-For")) {
      forwarded_for.append(forwarded_for.empty() ? "" : ", ").append(h.value);
      continue;
    }
    if (iequals(h.name, "X-Forwarded-Host") || iequals(h.name, "X-Forwarded-Proto") ||
        iequals(h.name, "X-Replay-Of") || iequals(h.name, "Content-Length") ||
        iequals(h.name, "Expect") || is_hop_by_hop(h.name, in)) {
      continue;
    }
    out.push_back(h);
  }
  out.push_back({"Host", std::string(ctx.upstream_authority)});
  forwarded_for.append(forwarded_for.empty() ? "" : ", ").append(ctx.client_ip);
  out.push_back({"X-Forwarded-For", std::move(forwarded_for)});
  if (client_host) out.push_back({"X-Forwarded-Host", *client_host});
  out.push_back({"X-Forwarded-Proto", std::string(ctx.client_proto)});
  add_framing(&out, framing);
  return out;
}

HeaderList downstream_response_headers(const HeaderList& in, const BodyFraming& framing) {
  HeaderList out;
  out.reserve(in.size() + 1);
  for (const auto& h : in) {
    if (is_hop_by_hop(h.name, in)) continue;
    if (iequals(h.name, "Content-Length") && framing.kind != BodyFraming::Kind::kNone) continue;
    out.push_back(h);
  }
  add_framing(&out, framing);
  return out;
}

}  // namespace lp
