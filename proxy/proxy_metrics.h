// The proxy's counters, gauges and histograms, updated on the data plane with relaxed atomics
// (no lock, no allocation per request) and rendered for the admin listener's GET /metrics.
// Every member may be touched from any thread. A ProxyMetrics outlives the Forwarders and
// loops that update it: it is created first in main and never replaced by a reload.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "common/prometheus_text.h"

namespace lp {

// Observations of a duration in fixed buckets from 50 us to 5 min (LLM streams run long).
class LatencyHistogram {
 public:
  static constexpr std::array<double, 22> kBounds = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,    0.5,    1,       2.5,    5,     10,     30,    60,   120,   300,  600};
  void observe(std::chrono::nanoseconds d);
  void render(PromText& out, std::string_view name, PromLabels labels = {}) const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
};

// Requests of one route (or of none) by method and status class.
class RouteRequestCounters {
 public:
  static constexpr std::array<std::string_view, 8> kMethods = {
      "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"};
  // Status classes: "none" (no answer was sent), then 1xx to 5xx.
  static constexpr std::array<std::string_view, 6> kClasses = {"none", "1xx", "2xx",
                                                               "3xx",  "4xx", "5xx"};
  void count(std::string_view method, int status);
  uint64_t value(size_t method, size_t status_class) const {
    return counts_[method][status_class].load(std::memory_order_relaxed);
  }

 private:
  std::array<std::array<std::atomic<uint64_t>, kClasses.size()>, kMethods.size()> counts_{};
};

class ProxyMetrics {
 public:
  // The counters of the route named `route` ("" for requests no route matched), created on
  // first use. The pointer stays valid for the life of this object, across reloads, so a
  // Forwarder looks its routes up once when it is built.
  RouteRequestCounters* route(const std::string& route);

  // Exchanges (requests) by outcome: complete, client_aborted, upstream_error, truncated.
  std::array<std::atomic<uint64_t>, 4> outcomes{};
  std::atomic<uint64_t> request_body_bytes{0};   // received from clients (decoded)
  std::atomic<uint64_t> response_body_bytes{0};  // sent to clients
  std::atomic<int64_t> exchanges_in_flight{0};
  std::atomic<int64_t> open_streams{0};  // text/event-stream responses being relayed
  std::atomic<uint64_t> upstream_connections_opened{0};
  std::atomic<uint64_t> upstream_connect_failures{0};
  std::atomic<uint64_t> config_reloads{0};
  std::atomic<uint64_t> config_reload_failures{0};
  std::atomic<int64_t> config_loaded_at_s{0};  // unix time of the config in force

  LatencyHistogram request_duration;  // head received -> response fully sent
  LatencyHistogram upstream_connect;  // TCP (and TLS) connect, new connections only
  LatencyHistogram upstream_headers;  // head received -> upstream response head parsed
  LatencyHistogram proxy_overhead;    // head received -> sent upstream, minus connecting

  // Appends the families above; the caller adds what other owners hold (queue, spool, ...).
  void render(PromText& out) const;

 private:
  mutable std::mutex routes_mu_;
  std::deque<std::pair<std::string, RouteRequestCounters>> routes_;  // stable addresses
};

}  // namespace lp
