// The seam between forwarding and capturing. The forwarder reports what crosses the proxy,
// in order, to an ExchangeObserver; the capture pipeline implements it. Observers must not
// block: they are called on the client's path, with bytes that are only valid for the call.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/http_message.h"
#include "proxy/io_result.h"

namespace lp {

enum class Outcome { kComplete, kClientAborted, kUpstreamError, kTruncated };
std::string_view outcome_name(Outcome outcome);

struct ExchangeInfo {
  std::string id;     // UUID
  std::string route;  // route name; empty when no route matched
  std::string method;
  std::string proxy_path;   // the request target as the client sent it (path + query)
  std::string destination;  // upstream URL; empty for locally answered requests
  std::string client_ip;
  std::string replay_of;  // id of the capture this request replays (X-Replay-Of), if any
  std::chrono::system_clock::time_point started_at;
  Clock::time_point started;
};

struct ExchangeTimings {
  Clock::time_point start;
  Clock::time_point request_forwarded;  // request head written upstream (proxy overhead)
  Clock::time_point upstream_headers;   // upstream response head parsed
  Clock::time_point first_body_byte;    // first response body bytes written to the client
  Clock::time_point end;
  // The proxy's own share (issue 5): time connecting to the upstream (TCP and TLS, every
  // attempt) when no pooled connection was used, and for the response body, each write to
  // the client timed from the arrival of its oldest bytes from upstream to the write's end.
  bool new_upstream_connection = false;
  Clock::duration upstream_connect{};
  uint64_t response_chunks = 0;
  Clock::duration chunk_delay_max{};
  Clock::duration chunk_delay_total{};
};

struct ExchangeSummary {
  Outcome outcome = Outcome::kComplete;
  int status = 0;  // as sent to the client; 0 when no response was sent
  uint64_t request_body_bytes = 0;
  uint64_t response_body_bytes = 0;
  std::string error;  // why, when not complete
  ExchangeTimings timings;
};

class ExchangeObserver {
 public:
  virtual ~ExchangeObserver() = default;
  virtual void on_request_head(const RequestHead& head) = 0;    // as received from the client
  virtual void on_request_body(std::string_view bytes) = 0;     // decoded body bytes
  virtual void on_response_head(const ResponseHead& head) = 0;  // as received (or generated)
  virtual void on_response_body(std::string_view bytes, Clock::time_point arrived) = 0;
  virtual void on_end(const ExchangeSummary& summary) = 0;
};

// Creates an observer for each exchange that is to be captured.
class ExchangeObserverFactory {
 public:
  virtual ~ExchangeObserverFactory() = default;
  virtual std::unique_ptr<ExchangeObserver> start(const ExchangeInfo& info) = 0;
};

}  // namespace lp
