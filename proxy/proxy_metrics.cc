#include "proxy/proxy_metrics.h"

#include <algorithm>

namespace lp {

void LatencyHistogram::observe(std::chrono::nanoseconds d) {
  const double s = std::chrono::duration<double>(d).count();
  const size_t i =
      static_cast<size_t>(std::lower_bound(kBounds.begin(), kBounds.end(), s) - kBounds.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(0, d.count())),
                    std::memory_order_relaxed);
}

void LatencyHistogram::render(PromText& out, std::string_view name, PromLabels labels) const {
  std::array<uint64_t, kBounds.size() + 1> counts;
  for (size_t i = 0; i < counts.size(); ++i) counts[i] = counts_[i].load(std::memory_order_relaxed);
  out.histogram_samples(name, labels, kBounds, counts,
                        static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9);
}

void RouteRequestCounters::count(std::string_view method, int status) {
  size_t m = kMethods.size() - 1;
  for (size_t i = 0; i + 1 < kMethods.size(); ++i) {
    if (kMethods[i] == method) {
      m = i;
      break;
    }
  }
  const size_t c = status >= 100 && status < 600 ? static_cast<size_t>(status / 100) : 0;
  counts_[m][c].fetch_add(1, std::memory_order_relaxed);
}

RouteRequestCounters* ProxyMetrics::route(const std::string& route) {
  std::lock_guard<std::mutex> lock(routes_mu_);
  for (auto& [name, counters] : routes_) {
    if (name == route) return &counters;
  }
  routes_.emplace_back(std::piecewise_construct, std::forward_as_tuple(route),
                       std::forward_as_tuple());
  return &routes_.back().second;
}

void ProxyMetrics::render(PromText& out) const {
  auto load = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  out.family("logging_proxy_requests_total", "counter",
             "Requests answered, by route (\"\" when none matched), method and status class "
             "(\"none\" when no answer was sent).");
  {
    std::lock_guard<std::mutex> lock(routes_mu_);
    for (const auto& [name, counters] : routes_) {
      for (size_t m = 0; m < RouteRequestCounters::kMethods.size(); ++m) {
        for (size_t c = 0; c < RouteRequestCounters::kClasses.size(); ++c) {
          const uint64_t v = counters.value(m, c);
          if (v == 0) continue;
          out.sample("logging_proxy_requests_total",
                     {{"route", name},
                      {"method", RouteRequestCounters::kMethods[m]},
                      {"status_class", RouteRequestCounters::kClasses[c]}},
                     v);
        }
      }
    }
  }
  out.family("logging_proxy_exchanges_total", "counter",
             "Exchanges ended, by outcome (as recorded in their captures).");
  static constexpr std::array<std::string_view, 4> kOutcomes = {"complete", "client_aborted",
                                                                "upstream_error", "truncated"};
  for (size_t i = 0; i < kOutcomes.size(); ++i) {
    out.sample("logging_proxy_exchanges_total", {{"outcome", kOutcomes[i]}}, load(outcomes[i]));
  }
  out.counter("logging_proxy_request_body_bytes_total",
              "Request body bytes received from clients (decoded from their framing).",
              load(request_body_bytes));
  out.counter("logging_proxy_response_body_bytes_total", "Response body bytes sent to clients.",
              load(response_body_bytes));
  out.gauge("logging_proxy_exchanges_in_flight", "Requests being served now.",
            load(exchanges_in_flight));
  out.gauge("logging_proxy_open_streams",
            "Server-Sent Events responses being relayed now (text/event-stream).",
            load(open_streams));
  out.counter("logging_proxy_upstream_connections_opened_total",
              "Upstream connections opened (not taken from the pool).",
              load(upstream_connections_opened));
  out.counter("logging_proxy_upstream_connect_failures_total",
              "Upstream connection attempts that failed (DNS, TCP or TLS).",
              load(upstream_connect_failures));
  out.counter("logging_proxy_config_reloads_total", "Configuration reloads applied.",
              load(config_reloads));
  out.counter("logging_proxy_config_reload_failures_total",
              "Configuration reloads refused (the configuration in force stayed).",
              load(config_reload_failures));
  out.gauge("logging_proxy_config_loaded_timestamp_seconds",
            "Unix time the configuration in force was loaded.", load(config_loaded_at_s));

  struct Hist {
    const LatencyHistogram& h;
    std::string_view name, help;
  };
  const Hist hists[] = {
      {request_duration, "logging_proxy_request_duration_seconds",
       "From the request head received to the response fully sent (or the exchange ended)."},
      {upstream_connect, "logging_proxy_upstream_connect_seconds",
       "Connecting to an upstream (TCP and TLS), new connections only."},
      {upstream_headers, "logging_proxy_upstream_headers_seconds",
       "From the request head received to the upstream's response head parsed."},
      {proxy_overhead, "logging_proxy_overhead_seconds",
       "The proxy's own time before the request went upstream: from its head received to it "
       "sent, minus connecting."},
  };
  for (const auto& h : hists) {
    out.family(h.name, "histogram", h.help);
    h.h.render(out, h.name);
  }
}

}  // namespace lp
