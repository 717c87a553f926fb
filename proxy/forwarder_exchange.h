// The state of one exchange, shared by the Forwarder's step functions (forwarder*.cc only).
// It lives in serve()'s coroutine frame for the length of one request.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "proxy/body_stream.h"
#include "proxy/client_connection.h"
#include "proxy/forwarder.h"
#include "proxy/upstream_connection.h"

namespace lp {

// "300s", "1.5s": a timeout as the proxy's own answers and errors name it.
inline std::string seconds_text(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%gs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

// Holds a gauge up (+1) from hold() until destruction: the exchange's frame may be destroyed
// without reaching finish() (a connection cut at shutdown), and the gauge must still come down.
class GaugeHold {
 public:
  GaugeHold() = default;
  GaugeHold(const GaugeHold&) = delete;
  GaugeHold& operator=(const GaugeHold&) = delete;
  ~GaugeHold() {
    if (gauge_) gauge_->fetch_sub(1, std::memory_order_relaxed);
  }
  void hold(std::atomic<int64_t>* gauge) {
    if (gauge_) return;
    gauge_ = gauge;
    gauge_->fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::atomic<int64_t>* gauge_ = nullptr;
};

struct Forwarder::Exchange {
  Exchange(ClientConnection& c, const RequestHead& h, UpstreamPool& p)
      : client(c), head(h), pool(p) {}
  ClientConnection& client;
  const RequestHead& head;
  UpstreamPool& pool;  // the serving thread's
  ExchangeInfo info;
  int route_index = -1;          // a configured route's index, else -1
  const Route* route = nullptr;  // the route forwarded by (configured or a forward proxy's)
  RouteRequestCounters* counters = nullptr;  // the route's, or no_route_counters_
  std::string upstream_target;               // the request target sent upstream (origin-form)
  bool forward_tls = false;  // an intercepted CONNECT's request: X-Forwarded-Proto https
  std::unique_ptr<ExchangeObserver> observer;
  BodyFraming request_framing;
  std::unique_ptr<BodyReader> request_body;
  bool continue_pending = false;  // the client awaits "100 Continue" before sending its body
  // The whole upstream request (head and framed body) when the body arrived with the head: it
  // goes out in one write, and is kept so a retry on a fresh connection sends it again.
  std::optional<std::string> whole_request;
  bool request_head_reported = false;
  bool client_close = false;  // close the client connection after this exchange
  bool body_failed = false;   // reading the request body failed: there is nothing to drain
  bool keep_alive = false;    // serve()'s result, set by finish()
  ExchangeSummary summary;
  GaugeHold in_flight;  // ProxyMetrics::exchanges_in_flight
  GaugeHold stream;     // ProxyMetrics::open_streams, while an event stream is relayed

  // The upstream side, once routed.
  std::unique_ptr<UpstreamConnection> conn;
  bool retryable = false;  // bodiless and idempotent: may be re-sent on a fresh connection
  bool may_retry = false;  // this attempt's connection came from the pool
  bool request_sent_fully = true;
  ResponseHead response;
  std::string upstream_buf;  // response bytes received, from the head on
  size_t head_size = 0;
};

// Watches the client for a hang-up during one upstream wait; a hang-up cancels that wait.
// Pipelined bytes are kept only once the request body is fully read (they are the next
// request, not this one's body).
class HangupWatch {
 public:
  HangupWatch(ClientConnection& client, UpstreamConnection& upstream, bool absorb)
      : client_(client) {
    client.watch_hangup([&upstream] { upstream.cancel(); }, absorb);
  }
  ~HangupWatch() { client_.stop_watch(); }
  HangupWatch(const HangupWatch&) = delete;
  HangupWatch& operator=(const HangupWatch&) = delete;

 private:
  ClientConnection& client_;
};

}  // namespace lp
