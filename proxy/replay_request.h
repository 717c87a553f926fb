// Rebuilding a captured request for `logging-proxy replay`. The stored request message is the
// head as forwarded (credentials masked, X-Proxy-Path added) followed by the body; the replay
// goes to the proxy at X-Proxy-Path, so it is routed, forwarded and captured like the original.
// Pure code: parsing and header rules only.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_message.h"

namespace lp {

struct ReplayRequest {
  RequestHead head;       // to send to the proxy
  std::string_view body;  // points into the stored message
};

struct ReplayOptions {
  std::string original_id;                  // sent as X-Replay-Of
  std::string proxy_authority;              // Host for the proxy, "127.0.0.1:5601"
  std::vector<std::string> redacted_names;  // headers that were masked in captures
  HeaderList overrides;  // --header values: replace same-named headers, else added
};

// Parses `stored` and builds the replay. Headers are kept in order except: hop-by-hop ones,
// Host, Content-Length, X-Forwarded-*, X-Proxy-Path and X-Replay-Of are dropped; masked
// credentials (a redacted name whose value holds "****") are dropped unless overridden.
// nullopt with *error naming the problem (malformed message, no X-Proxy-Path).
std::optional<ReplayRequest> build_replay_request(std::string_view stored,
                                                  const ReplayOptions& options, std::string* error);

// Parses "Name: value" as given to --header; nullopt if it is not a valid header line.
std::optional<Header> parse_header_arg(std::string_view text);

}  // namespace lp
