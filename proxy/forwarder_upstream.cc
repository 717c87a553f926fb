// The Forwarder's way out: the upstream request (head, 100-continue, body) and the wait for
// the response head, with the one retry a stale pooled connection allows.
#include <cstdio>

#include "proxy/async_body.h"
#include "proxy/forward_headers.h"
#include "proxy/forwarder.h"
#include "proxy/forwarder_exchange.h"

namespace lp {
namespace {

// Response head bytes read per wait; a head is small and the rest is the body's.
constexpr size_t kHeadReadSize = 16 * 1024;

// Each decoded piece of the request body goes to the capture (when there is one), then framed
// onto `*out`.
struct RequestBodySink {
  ExchangeObserver* observer;
  const BodyEncoder& encoder;
  std::string* out;
  void operator()(std::string_view piece) const {
    if (observer) observer->on_request_body(piece);
    encoder.append(out, piece);
  }
};

}  // namespace

awaitable<bool> Forwarder::forward(Exchange& ex) {
  const Step step = co_await exchange_heads(ex);
  if (step == Step::kDone) co_return ex.keep_alive;
  co_return co_await relay_response(ex);
}

// The request out and the response head in. Its frame holds the request's bytes for a retry;
// it ends before the response body is relayed, so a long stream does not keep them.
awaitable<Forwarder::Step> Forwarder::exchange_heads(Exchange& ex) {
  const std::string head_bytes = upstream_request_head(ex);
  // A request without a body, on a connection taken from the pool, may be retried once on
  // a fresh connection if the pooled one turns out to be closed before any response byte.
  const std::string& method = ex.head.method;
  ex.retryable =
      ex.request_body->done() && (method == "GET" || method == "HEAD" || method == "OPTIONS");
  for (int attempt = 0;; ++attempt) {
    Step step = co_await open_upstream(ex, attempt);
    if (step == Step::kNext) step = co_await send_request(ex, head_bytes);
    if (step == Step::kNext) step = co_await await_response_head(ex);
    if (step != Step::kRetry) {
      ex.whole_request.reset();  // no attempt follows: a chat's prompt is not held for its answer
      co_return step;
    }
    ex.upstream_buf.clear();
  }
}

std::string Forwarder::upstream_request_head(Exchange& ex) const {
  const Route& route = *ex.route;
  RequestHead upstream_head;
  upstream_head.method = ex.head.method;
  upstream_head.target = ex.upstream_target;
  const std::string authority = route.config->destination.authority();
  const ForwardContext ctx{authority, ex.client.peer_ip(), ex.forward_tls ? "https" : "http"};
  upstream_head.headers = upstream_request_headers(ex.head.headers, ctx, ex.request_framing);
  for (const auto& [name, value] : route.config->headers) {
    // Configured headers (e.g. the provider key kept in the proxy) replace the client's.
    std::erase_if(upstream_head.headers, [&](const Header& h) { return iequals(h.name, name); });
    upstream_head.headers.push_back({name, value});
  }
  std::string head_bytes;
  append_request_head(&head_bytes, upstream_head);
  if (ex.observer) {
    ex.observer->on_request_head(upstream_head);
    ex.request_head_reported = true;
  }
  return head_bytes;
}

awaitable<Forwarder::Step> Forwarder::open_upstream(Exchange& ex, int attempt) {
  const Endpoint& endpoint = *ex.route->endpoint;
  ex.conn = attempt == 0 ? ex.pool.take_idle(endpoint) : nullptr;
  if (!ex.conn) {
    const Clock::time_point start = Clock::now();
    auto conn = std::make_unique<UpstreamConnection>(ex.client.socket().get_executor(), endpoint);
    std::string error;
    const bool opened = co_await conn->open(deadline_after(config_.server.connect_timeout), &error);
    if (!opened) {
      metrics_.upstream_connect_failures.fetch_add(1, std::memory_order_relaxed);
      co_await upstream_failed(ex, 502, error);
      co_return Step::kDone;
    }
    metrics_.upstream_connections_opened.fetch_add(1, std::memory_order_relaxed);
    ex.summary.timings.new_upstream_connection = true;
    ex.summary.timings.upstream_connect += Clock::now() - start;
    ex.conn = std::move(conn);
  }
  ex.may_retry = ex.conn->reused && attempt == 0;
  co_return Step::kNext;
}

awaitable<Forwarder::Step> Forwarder::send_request(Exchange& ex, const std::string& head_bytes) {
  const ServerConfig& sc = config_.server;
  // A body that came whole with the head goes out in the same write: one send, not two.
  if (!ex.whole_request && !ex.continue_pending && ex.request_body->buffered_to_end()) {
    std::string request = head_bytes;
    const BodyEncoder encoder(ex.request_framing);
    const IoResult r =
        ex.request_body->consume_buffered(RequestBodySink{ex.observer.get(), encoder, &request});
    if (!r.ok() || !ex.request_body->done()) std::abort();  // buffered_to_end() promised it
    encoder.finish(&request);
    ex.whole_request = std::move(request);
  }
  const IoResult w = co_await ex.conn->write_all(ex.whole_request ? *ex.whole_request : head_bytes,
                                                 deadline_after(sc.upstream_timeout));
  if (!w.ok()) {
    if (ex.may_retry &&
        (ex.retryable || ex.whole_request || ex.request_body->decoded_bytes() == 0)) {
      co_return Step::kRetry;
    }
    co_await upstream_failed(ex, 502, "sending the request upstream: " + w.error);
    co_return Step::kDone;
  }
  ex.summary.timings.request_forwarded = Clock::now();
  if (ex.continue_pending) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    const IoResult sent = co_await ex.client.write_all(kContinue, deadline_after(sc.idle_timeout));
    if (!sent.ok()) {
      client_gone(ex, "client closed before sending its body");
      co_return Step::kDone;
    }
    ex.continue_pending = false;
  }
  co_return co_await send_request_body(ex);
}

// Request body: client -> upstream, one read at a time, each written before the next read.
awaitable<Forwarder::Step> Forwarder::send_request_body(Exchange& ex) {
  const ServerConfig& sc = config_.server;
  BodyReader& body = *ex.request_body;
  const BodyEncoder encoder(ex.request_framing);
  std::string out;
  const RequestBodySink sink{ex.observer.get(), encoder, &out};
  while (!body.done()) {
    out.clear();
    const IoResult r =
        co_await read_body_once(body, ex.client, deadline_after(sc.idle_timeout), sink);
    if (r.status == IoResult::Status::kTimeout) {
      const Step step = co_await refuse_request_body(ex, 408, "client stopped sending its body");
      co_return step;
    }
    if (!r.ok()) {
      if (r.error.starts_with("invalid chunked body")) {
        const Step step = co_await refuse_request_body(ex, 400, r.error);
        co_return step;
      }
      client_gone(ex, "client failed while sending its body: " + r.error);
      co_return Step::kDone;
    }
    if (sc.max_request_body_bytes != 0 && body.decoded_bytes() > sc.max_request_body_bytes) {
      // A chunked body grew past the limit: what was already forwarded stays forwarded, the
      // upstream request is cut (the connection is not reused) and the client gets 413.
      const Step step =
          co_await refuse_request_body(ex, 413,
                                       "request body exceeds server.max_request_body_bytes (" +
                                           std::to_string(sc.max_request_body_bytes) + ")");
      co_return step;
    }
    if (body.done()) encoder.finish(&out);
    if (out.empty()) continue;
    const IoResult w = co_await ex.conn->write_all(out, deadline_after(sc.upstream_timeout));
    if (!w.ok()) {
      // The upstream may have answered early (413, 401) and closed; read what it said.
      ex.request_sent_fully = false;
      ex.client_close = true;
      break;
    }
  }
  co_return Step::kNext;
}

// The request body cannot go on (timed out, malformed, too large): the client gets `status`
// and the connection closes; the upstream request stays incomplete, its connection unused.
awaitable<Forwarder::Step> Forwarder::refuse_request_body(Exchange& ex, int status,
                                                          std::string error) {
  ex.client_close = true;
  ex.body_failed = true;
  ex.summary.outcome = Outcome::kClientAborted;
  ex.summary.error = std::move(error);
  std::string text = status == 408 ? "request body timed out\n" : ex.summary.error + "\n";
  co_await respond_locally(ex, status, std::move(text));
  co_return Step::kDone;
}

// Response head; the client's socket is watched so a hang-up aborts at once.
awaitable<Forwarder::Step> Forwarder::await_response_head(Exchange& ex) {
  const ServerConfig& sc = config_.server;
  while (true) {
    const ParseResult parsed = parse_response_head(ex.upstream_buf, limits_, &ex.response);
    if (parsed.state == ParseResult::State::kError) {
      co_await upstream_failed(ex, 502, parsed.error);
      co_return Step::kDone;
    }
    if (parsed.state == ParseResult::State::kDone) {
      if (ex.response.status >= 200) {
        ex.head_size = parsed.consumed;
        co_return Step::kNext;
      }
      const Step step = co_await relay_interim(ex);
      if (step == Step::kDone) co_return Step::kDone;
      ex.upstream_buf.erase(0, parsed.consumed);
      continue;
    }
    ReadResult r;
    {
      HangupWatch watch(ex.client, *ex.conn, ex.request_body->done() && !ex.client_close);
      r = co_await ex.conn->read_some(kHeadReadSize, deadline_after(sc.upstream_timeout));
    }
    if (ex.client.hung_up()) {
      client_gone(ex, "client closed the connection before the response");
      co_return Step::kDone;
    }
    if (r.io.ok()) {
      ex.upstream_buf.append(r.data);
      continue;
    }
    if (r.io.status == IoResult::Status::kTimeout) {
      co_await upstream_failed(ex, 504,
                               "no response headers within " + seconds_text(sc.upstream_timeout));
      co_return Step::kDone;
    }
    if (ex.upstream_buf.empty() && ex.may_retry && ex.retryable) co_return Step::kRetry;
    co_await upstream_failed(ex, 502,
                             r.io.status == IoResult::Status::kEof
                                 ? "upstream closed the connection without a response"
                                 : "reading the upstream response: " + r.io.error);
    co_return Step::kDone;
  }
}

// A 1xx response: 103 Early Hints and the like go through to HTTP/1.1 clients; 100 Continue
// was ours to send; 101 would take the connection out of HTTP, which is not supported.
awaitable<Forwarder::Step> Forwarder::relay_interim(Exchange& ex) {
  if (ex.response.status == 101) {
    co_await upstream_failed(ex, 502, "upstream switched protocols, which is not supported");
    co_return Step::kDone;
  }
  if (ex.response.status == 100 || ex.head.minor_version != 1) co_return Step::kNext;
  ResponseHead interim = ex.response;
  interim.headers = downstream_response_headers(ex.response.headers, BodyFraming{});
  std::string bytes;
  append_response_head(&bytes, interim);
  const IoResult w =
      co_await ex.client.write_all(bytes, deadline_after(config_.server.idle_timeout));
  if (!w.ok()) {
    client_gone(ex, "client closed during an interim response");
    co_return Step::kDone;
  }
  co_return Step::kNext;
}

}  // namespace lp
