// Which headers cross the proxy, per hop (RFC 9110 §7.6.1). End-to-end headers pass through
// exactly as received, in order, repeats kept; hop-by-hop ones (Connection, the headers it
// names, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade) are dropped and the
// framing headers are regenerated for the next hop. Pure code.
#pragma once

#include <string>
#include <string_view>

#include "common/http_message.h"

namespace lp {

// Whether `name` is hop-by-hop in a message whose Connection headers are `headers`.
bool is_hop_by_hop(std::string_view name, const HeaderList& headers);

struct ForwardContext {
  std::string_view upstream_authority;  // Host for the upstream request
  std::string_view client_ip;           // peer address of the client connection
  std::string_view client_proto;        // "http": the scheme the client used to reach us
};

// The upstream request's headers: end-to-end headers of `in` in order, minus Host,
// Content-Length, Expect (the proxy answers 100-continue itself) and X-Replay-Of (meant for the
// proxy's capture, set by `logging-proxy replay`), then Host, the
// X-Forwarded-* set (For appended to any existing list, Host and Proto replaced), and the
// framing header for `framing`.
HeaderList upstream_request_headers(const HeaderList& in, const ForwardContext& ctx,
                                    const BodyFraming& framing);

// The client response's headers: end-to-end headers of `in` in order, minus Content-Length,
// then the framing header for `framing` as sent to the client. For a response without a
// body by its semantics (HEAD, 304: framing kNone) the upstream's Content-Length is kept,
// since it describes the representation, not this message's body.
HeaderList downstream_response_headers(const HeaderList& in, const BodyFraming& framing);

}  // namespace lp
