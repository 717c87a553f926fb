// The Forwarder's way back: the response head rewritten for the client and the body relayed
// piece by piece, each piece written (and awaited) before the next upstream read, so a slow
// client slows the upstream instead of filling the proxy's memory.
#include <cstdio>

#include "common/ascii.h"
#include "proxy/async_body.h"
#include "proxy/forward_headers.h"
#include "proxy/forwarder.h"
#include "proxy/forwarder_exchange.h"

namespace lp {
namespace {

// A bulk body (pieces of up to 64 KiB) keeps its write buffer from one read to the next; a
// body that comes in small pieces (SSE events, NDJSON lines, a slow upstream) gives it back
// after each write, so a stream idle for minutes between pieces holds none. The allocation
// per small piece is nothing next to the piece's own syscalls.
constexpr size_t kKeptWriteBuffer = 16 * 1024;

// Per-chunk timings: `since` is the arrival of the oldest body bytes just written.
void record_chunk_written(ExchangeTimings& t, Clock::time_point since) {
  const Clock::time_point written = Clock::now();
  const Clock::duration delay = written - since;
  ++t.response_chunks;
  t.chunk_delay_total += delay;
  if (delay > t.chunk_delay_max) t.chunk_delay_max = delay;
  if (t.first_body_byte == Clock::time_point{}) t.first_body_byte = written;
}

}  // namespace

awaitable<bool> Forwarder::relay_response(Exchange& ex) {
  ex.summary.timings.upstream_headers = Clock::now();
  const ResponseHead& response = ex.response;
  FramingResult framing = response_framing(ex.head.method, response);
  if (framing.error_status != 0) {
    const bool keep_alive = co_await upstream_failed(ex, 502, framing.error);
    co_return keep_alive;
  }
  BodyFraming client_framing = framing.framing;
  if (client_framing.kind == BodyFraming::Kind::kChunked ||
      client_framing.kind == BodyFraming::Kind::kUntilClose) {
    if (ex.head.minor_version == 1) {
      client_framing.kind = BodyFraming::Kind::kChunked;
    } else {
      client_framing.kind = BodyFraming::Kind::kUntilClose;
      ex.client_close = true;
    }
  }
  if (stopping_) ex.client_close = true;
  std::string out;
  {
    // Scoped: the rewritten head is not held while the body is relayed.
    ResponseHead downstream;
    downstream.status = response.status;
    downstream.reason = response.reason;
    downstream.headers = downstream_response_headers(response.headers, client_framing);
    if (ex.client_close) downstream.headers.push_back({"Connection", "close"});
    append_response_head(&out, downstream);
  }
  if (ex.observer) ex.observer->on_response_head(response);
  ex.summary.status = response.status;
  if (is_event_stream(response.headers)) ex.stream.hold(&metrics_.open_streams);

  BodyReader body(framing.framing, ex.upstream_buf.substr(ex.head_size));
  std::string().swap(ex.upstream_buf);
  const bool relayed =
      co_await relay_response_body(ex, body, BodyEncoder(client_framing), std::move(out));
  if (!relayed) co_return finish(ex);
  ex.summary.response_body_bytes = body.decoded_bytes();
  const bool reusable = ex.request_sent_fully && response.minor_version == 1 &&
                        !headers_have_token(response.headers, "Connection", "close") &&
                        framing.framing.kind != BodyFraming::Kind::kUntilClose &&
                        body.take_leftover().empty();
  if (reusable) ex.pool.release(std::move(ex.conn));
  co_return finish(ex);
}

// Returns false when the exchange ended early (summary filled in, the client to be closed).
awaitable<bool> Forwarder::relay_response_body(Exchange& ex, BodyReader& body,
                                               const BodyEncoder& encoder, std::string out) {
  const ServerConfig& sc = config_.server;
  // Arrival of the oldest body bytes in `out`; bytes that came with the head arrived with it.
  Clock::time_point out_since{};
  bool first = true;
  auto tee = [&](std::string_view piece) {
    const Clock::time_point arrived = first ? ex.summary.timings.upstream_headers : Clock::now();
    if (out_since == Clock::time_point{}) out_since = arrived;
    if (ex.observer) ex.observer->on_response_body(piece, arrived);
    encoder.append(&out, piece);
  };
  while (true) {
    if (!body.done() && (!first || body.has_buffered())) {
      IoResult r;
      if (body.has_buffered()) {
        r = co_await read_body_once(body, *ex.conn, no_deadline(), tee);
      } else {
        HangupWatch watch(ex.client, *ex.conn, ex.request_body->done() && !ex.client_close);
        r = co_await read_body_once(body, *ex.conn, deadline_after(sc.upstream_timeout), tee);
      }
      ex.summary.response_body_bytes = body.decoded_bytes();
      if (ex.client.hung_up()) {
        client_aborted(ex, "client closed the connection mid-response");
        co_return false;
      }
      if (!r.ok()) {
        // Headers are out: the only honest signal left is to cut the connection, so the
        // client sees an incomplete body rather than a silent success.
        ex.summary.outcome = Outcome::kUpstreamError;
        ex.summary.error =
            r.status == IoResult::Status::kTimeout
                ? "upstream idle for " + seconds_text(sc.upstream_timeout) + " mid-response"
                : r.error;
        ex.client_close = true;
        if (!out.empty()) {
          co_await ex.client.write_all(out, deadline_after(sc.idle_timeout));
        }
        co_return false;
      }
    }
    first = false;
    if (body.done()) encoder.finish(&out);
    if (!out.empty()) {
      const IoResult w = co_await ex.client.write_all(out, deadline_after(sc.idle_timeout));
      if (!w.ok()) {
        client_aborted(ex, "writing to the client: " + w.error);
        co_return false;
      }
      if (out_since != Clock::time_point{}) {
        record_chunk_written(ex.summary.timings, out_since);
        out_since = Clock::time_point{};
      }
      if (out.capacity() > kKeptWriteBuffer) {
        out.clear();
      } else {
        std::string().swap(out);
      }
    }
    if (body.done()) co_return true;
  }
}

}  // namespace lp
