#include "proxy/forwarder.h"

#include <charconv>
#include <cstdio>
#include <map>

#include "common/ids.h"
#include "proxy/body_stream.h"
#include "proxy/forward_headers.h"
#include "proxy/redaction.h"

namespace lp {
namespace {

// A local response (404, 502, ...) may arrive before the client sent its body; reading a
// small body first lets the client see the answer instead of a reset.
constexpr uint64_t kMaxDrainBytes = 1 << 20;

std::string seconds_text(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%gs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

bool is_capture_id(std::string_view s) {
  return s.size() == 36 && s.find_first_not_of("0123456789abcdef-") == std::string_view::npos;
}

}  // namespace

std::string_view outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kComplete:
      return "complete";
    case Outcome::kClientAborted:
      return "client_aborted";
    case Outcome::kUpstreamError:
      return "upstream_error";
    case Outcome::kTruncated:
      return "truncated";
  }
  return "unknown";
}

struct Forwarder::Exchange {
  Exchange(ClientConnection& c, const RequestHead& h) : client(c), head(h) {}
  ClientConnection& client;
  const RequestHead& head;
  ExchangeInfo info;
  int route_index = -1;
  std::unique_ptr<ExchangeObserver> observer;
  BodyFraming request_framing;
  std::unique_ptr<BodyReader> request_body;
  bool continue_pending = false;  // the client awaits "100 Continue" before sending its body
  bool request_head_reported = false;
  bool client_close = false;  // close the client connection after this exchange
  bool body_failed = false;   // reading the request body failed: there is nothing to drain
  ExchangeSummary summary;
};

Forwarder::Forwarder(const Config& config, ConsoleLog& console, ExchangeObserverFactory* capture)
    : config_(config), console_(console), capture_(capture), router_([&] {
        std::vector<RouteSpec> specs;
        for (const auto& r : config.routes) specs.push_back({r.name, r.pattern});
        return specs;
      }()) {
  limits_.max_head_bytes = config.server.max_header_bytes;
  std::map<std::pair<std::string, bool>, const TlsClientContext*> contexts;
  std::map<std::string, const Endpoint*> endpoints;
  for (const auto& r : config.routes) {
    const TlsClientContext* tls = nullptr;
    if (r.destination.tls()) {
      auto key = std::make_pair(r.ca_file, !r.insecure_skip_verify);
      auto it = contexts.find(key);
      if (it == contexts.end()) {
        std::string error;
        auto ctx = TlsClientContext::create(r.ca_file, !r.insecure_skip_verify, &error);
        if (!ctx) throw std::runtime_error("route '" + r.name + "': " + error);
        it = contexts.emplace(key, ctx.get()).first;
        tls_contexts_.push_back(std::move(ctx));
      }
      tls = it->second;
    }
    std::string key = r.destination.origin() +
                      (tls ? "|" + std::to_string(reinterpret_cast<uintptr_t>(tls)) : "");
    auto it = endpoints.find(key);
    if (it == endpoints.end()) {
      auto ep = std::make_unique<Endpoint>();
      ep->host = r.destination.host;
      ep->port = r.destination.port;
      ep->tls = tls;
      ep->key = key;
      it = endpoints.emplace(key, ep.get()).first;
      endpoints_.push_back(std::move(ep));
    }
    routes_.push_back({&r, it->second});
  }
}

Forwarder::~Forwarder() = default;

bool Forwarder::serve(ClientConnection& client, const RequestHead& head) {
  Exchange ex(client, head);
  ex.summary.timings.start = Clock::now();
  ex.info.id = new_uuid();
  ex.info.started = ex.summary.timings.start;
  ex.info.started_at = std::chrono::system_clock::now();
  ex.info.proxy_path = head.target;
  ex.info.client_ip = client.peer_ip;
  ex.client_close = stopping_ || head.minor_version == 0 ||
                    headers_have_token(head.headers, "Connection", "close");

  RouteMatch match;
  const std::string& not_found = config_.server.not_found;
  bool not_found_prefix = !not_found.empty() && head.path().starts_with(not_found);
  if (!not_found_prefix) {
    const std::string* host = find_header(head.headers, "Host");
    match =
        router_.match(head.method, host ? *host : std::string_view{}, head.path(), head.query());
  }
  const RouteConfig* route_config = nullptr;
  if (match.kind == RouteMatch::Kind::kRoute) {
    ex.route_index = match.route_index;
    route_config = routes_[match.route_index].config;
    ex.info.route = route_config->name;
    ex.info.destination = route_config->destination.origin() +
                          upstream_target(router_.pattern(match.route_index),
                                          route_config->destination, head.path(), head.query());
  }
  ex.info.method = head.method;
  // `logging-proxy replay` marks its requests so the new capture links to the original.
  if (const std::string* replay_of = find_header(head.headers, "X-Replay-Of");
      replay_of && is_capture_id(*replay_of)) {
    ex.info.replay_of = *replay_of;
  }
  if (capture_ && config_.captures(route_config)) ex.observer = capture_->start(ex.info);
  log_start(ex);

  FramingResult framing = request_framing(head);
  if (framing.error_status != 0) {
    ex.client_close = true;  // the body's extent is unknown: the connection is unusable
    ex.request_body = std::make_unique<BodyReader>(BodyFraming{}, std::string());
    return respond_locally(ex, framing.error_status, framing.error + "\n");
  }
  ex.request_framing = framing.framing;
  ex.request_body = std::make_unique<BodyReader>(framing.framing, std::move(client.buffer));
  client.buffer.clear();
  ex.continue_pending =
      !ex.request_body->done() && headers_have_token(head.headers, "Expect", "100-continue");
  if (const uint64_t max_body = config_.server.max_request_body_bytes;
      max_body != 0 && framing.framing.kind == BodyFraming::Kind::kLength &&
      framing.framing.length > max_body) {
    // Refused before a byte of it is read or forwarded; the unread body makes the connection
    // unusable, so it closes after the answer.
    ex.client_close = true;
    ex.body_failed = true;
    ex.summary.error = "request body of " + std::to_string(framing.framing.length) +
                       " bytes exceeds server.max_request_body_bytes (" + std::to_string(max_body) +
                       ")";
    return respond_locally(ex, 413, ex.summary.error + "\n");
  }

  switch (match.kind) {
    case RouteMatch::Kind::kRoute:
      return forward(ex);
    case RouteMatch::Kind::kRedirect:
      return respond_locally(ex, 301, "Moved Permanently: " + redact_query(match.location) + "\n",
                             {{"Location", match.location}});
    case RouteMatch::Kind::kMethodNotAllowed:
      return respond_locally(ex, 405, "Method Not Allowed\n", {{"Allow", match.allow}});
    case RouteMatch::Kind::kNotFound:
      break;
  }
  // The proxy's own answers mask query credentials always: the body is captured and stored.
  return respond_locally(
      ex, 404, "No route found for " + head.method + " " + redact_query(head.target) + "\n");
}

void Forwarder::log_start(const Exchange& ex) const {
  if (!console_.enabled()) return;
  // Credentials in the query (?key=...) are masked; the writer thread adds the timestamp.
  std::string target_masked, destination_masked;
  std::string_view target = ex.head.target;
  if (target.find('?') != std::string_view::npos) target = target_masked = redact_query(target);
  std::string_view destination = ex.info.destination;
  if (destination.empty()) {
    destination = "(no route)";
  } else if (destination.find('?') != std::string_view::npos) {
    destination = destination_masked = redact_query(destination);
  }
  console_.stamped_line(ex.info.started_at,
                        {" [", std::string_view(ex.info.id).substr(0, 8), "] ", ex.head.method, " ",
                         target, " -> ", destination, ex.observer ? " [log]" : ""});
}

bool Forwarder::finish(Exchange& ex) {
  ex.summary.timings.end = Clock::now();
  if (ex.request_body) {
    ex.summary.request_body_bytes = ex.request_body->decoded_bytes();
    if (ex.request_body->done() && !ex.client_close) {
      ex.client.buffer = ex.request_body->take_leftover();
    } else {
      ex.client_close = true;
    }
  }
  if (console_.enabled()) {
    // Integers only (no printf): "200 1024 bytes 0.1 ms".
    char status[16], bytes[24], ms[32];
    auto end_of = [](char* b, size_t n, auto v) { return std::to_chars(b, b + n, v).ptr; };
    const std::string_view status_text(status,
                                       end_of(status, sizeof status, ex.summary.status) - status);
    const std::string_view bytes_text(
        bytes, end_of(bytes, sizeof bytes, ex.summary.response_body_bytes) - bytes);
    const auto tenths =
        static_cast<uint64_t>((std::chrono::duration_cast<std::chrono::microseconds>(
                                   ex.summary.timings.end - ex.summary.timings.start)
                                   .count() +
                               50) /
                              100);
    char* p = end_of(ms, sizeof ms - 2, tenths / 10);
    *p++ = '.';
    *p++ = static_cast<char>('0' + tenths % 10);
    const std::string_view ms_text(ms, p - ms);
    const bool complete = ex.summary.outcome == Outcome::kComplete;
    const bool with_error = !complete && !ex.summary.error.empty();
    console_.stamped_line(
        std::chrono::system_clock::now(),
        {" [", std::string_view(ex.info.id).substr(0, 8), "] ", status_text, " ", bytes_text,
         " bytes ", ms_text, " ms", complete ? "" : " ",
         complete ? std::string_view() : outcome_name(ex.summary.outcome), with_error ? ": " : "",
         with_error ? std::string_view(ex.summary.error) : std::string_view()});
  }
  if (ex.observer) ex.observer->on_end(ex.summary);
  return !ex.client_close;
}

bool Forwarder::respond_locally(Exchange& ex, int status, std::string body,
                                std::vector<Header> extra_headers) {
  BodyReader& request_body = *ex.request_body;
  if (!request_body.done()) {
    if (ex.continue_pending || ex.body_failed) {
      // The client awaits 100 Continue and will not send the body, or reading it already failed.
      ex.client_close = true;
    } else {
      while (!request_body.done() && request_body.decoded_bytes() <= kMaxDrainBytes) {
        IoResult r =
            request_body.read_once(ex.client.stream, deadline_after(config_.server.idle_timeout),
                                   -1, [&](std::string_view piece) {
                                     if (ex.observer) ex.observer->on_request_body(piece);
                                   });
        if (!r.ok()) break;
      }
      if (!request_body.done()) ex.client_close = true;
    }
  }
  if (ex.observer && !ex.request_head_reported) {
    ex.observer->on_request_head(ex.head);
    ex.request_head_reported = true;
  }
  ResponseHead response;
  response.status = status;
  response.reason = reason_phrase(status);
  response.headers.push_back({"Content-Type", "text/plain; charset=utf-8"});
  response.headers.push_back({"Content-Length", std::to_string(body.size())});
  for (auto& h : extra_headers) response.headers.push_back(std::move(h));
  if (ex.client_close || stopping_) {
    ex.client_close = true;
    response.headers.push_back({"Connection", "close"});
  }
  std::string out;
  append_response_head(&out, response);
  if (ex.head.method != "HEAD") out += body;
  if (ex.observer) {
    ex.observer->on_response_head(response);
    ex.observer->on_response_body(body, Clock::now());
  }
  ex.summary.status = status;
  ex.summary.response_body_bytes = body.size();
  IoResult w = write_all(ex.client.stream, out.data(), out.size(),
                         deadline_after(config_.server.idle_timeout));
  if (!w.ok()) {
    ex.client_close = true;
    if (ex.summary.outcome == Outcome::kComplete) ex.summary.outcome = Outcome::kClientAborted;
  }
  return finish(ex);
}

bool Forwarder::forward(Exchange& ex) {
  const Route& route = routes_[ex.route_index];
  const Endpoint& endpoint = *route.endpoint;
  const ServerConfig& sc = config_.server;
  BodyReader& request_body = *ex.request_body;
  auto upstream_failed = [&](int status, const std::string& reason) {
    ex.summary.outcome = Outcome::kUpstreamError;
    ex.summary.error = reason;
    std::string body = status == 504 ? "[" + short_id(ex.info.id) + "] upstream timed out: "
                                     : "[" + short_id(ex.info.id) + "] proxy request failed: ";
    return respond_locally(ex, status, body + reason + "\n");
  };
  auto client_gone = [&](const std::string& why) {
    ex.summary.outcome = Outcome::kClientAborted;
    ex.summary.error = why;
    ex.client_close = true;
    return finish(ex);
  };

  RequestHead upstream_head;
  upstream_head.method = ex.head.method;
  upstream_head.target = upstream_target(router_.pattern(ex.route_index), route.config->destination,
                                         ex.head.path(), ex.head.query());
  std::string authority = route.config->destination.authority();
  ForwardContext ctx{authority, ex.client.peer_ip, "http"};
  const BodyFraming request_framing = ex.request_framing;
  upstream_head.headers = upstream_request_headers(ex.head.headers, ctx, request_framing);
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

  // A request without a body, on a connection taken from the pool, may be retried once on
  // a fresh connection if the pooled one turns out to be closed before any response byte.
  const bool retryable =
      request_body.done() &&
      (ex.head.method == "GET" || ex.head.method == "HEAD" || ex.head.method == "OPTIONS");
  std::unique_ptr<UpstreamConnection> conn;
  ResponseHead response;
  std::string upstream_buf;
  size_t head_size = 0;
  bool request_sent_fully = true;
  for (int attempt = 0;; ++attempt) {
    std::string error;
    const Clock::time_point acquire_start = Clock::now();
    conn = pool_.acquire(endpoint, deadline_after(sc.connect_timeout), &error);
    if (!conn) return upstream_failed(502, error);
    if (!conn->reused) {
      ex.summary.timings.new_upstream_connection = true;
      ex.summary.timings.upstream_connect += Clock::now() - acquire_start;
    }
    const bool may_retry = conn->reused && attempt == 0;
    IoResult w = write_all(*conn->stream, head_bytes.data(), head_bytes.size(),
                           deadline_after(sc.upstream_timeout));
    if (!w.ok()) {
      if (may_retry && (retryable || request_body.decoded_bytes() == 0)) continue;
      return upstream_failed(502, "sending the request upstream: " + w.error);
    }
    ex.summary.timings.request_forwarded = Clock::now();

    if (ex.continue_pending) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      if (!write_all(ex.client.stream, kContinue.data(), kContinue.size(),
                     deadline_after(sc.idle_timeout))
               .ok()) {
        return client_gone("client closed before sending its body");
      }
      ex.continue_pending = false;
    }

    // Request body: client -> upstream, one read at a time.
    BodyEncoder encoder(request_framing);
    std::string out;
    while (!request_body.done()) {
      out.clear();
      IoResult r = request_body.read_once(ex.client.stream, deadline_after(sc.idle_timeout), -1,
                                          [&](std::string_view piece) {
                                            if (ex.observer) ex.observer->on_request_body(piece);
                                            encoder.append(&out, piece);
                                          });
      if (r.status == IoResult::Status::kTimeout) {
        ex.client_close = true;
        ex.body_failed = true;
        ex.summary.outcome = Outcome::kClientAborted;
        ex.summary.error = "client stopped sending its body";
        return respond_locally(ex, 408, "request body timed out\n");
      }
      if (!r.ok()) {
        if (r.error.starts_with("invalid chunked body")) {
          ex.client_close = true;
          ex.body_failed = true;
          ex.summary.outcome = Outcome::kClientAborted;
          ex.summary.error = r.error;
          return respond_locally(ex, 400, r.error + "\n");
        }
        return client_gone("client failed while sending its body: " + r.error);
      }
      if (sc.max_request_body_bytes != 0 &&
          request_body.decoded_bytes() > sc.max_request_body_bytes) {
        // A chunked body grew past the limit: what was already forwarded stays forwarded, the
        // upstream request is cut (the connection is not reused) and the client gets 413.
        ex.client_close = true;
        ex.body_failed = true;
        ex.summary.outcome = Outcome::kClientAborted;
        ex.summary.error = "request body exceeds server.max_request_body_bytes (" +
                           std::to_string(sc.max_request_body_bytes) + ")";
        return respond_locally(ex, 413, ex.summary.error + "\n");
      }
      if (request_body.done()) encoder.finish(&out);
      if (out.empty()) continue;
      IoResult uw =
          write_all(*conn->stream, out.data(), out.size(), deadline_after(sc.upstream_timeout));
      if (!uw.ok()) {
        // The upstream may have answered early (413, 401) and closed; read what it said.
        request_sent_fully = false;
        ex.client_close = true;
        break;
      }
    }

    // Response head; the client's socket is watched so a hang-up aborts at once.
    bool retry = false;
    while (true) {
      ParseResult parsed = parse_response_head(upstream_buf, limits_, &response);
      if (parsed.state == ParseResult::State::kError) return upstream_failed(502, parsed.error);
      if (parsed.state == ParseResult::State::kDone) {
        if (response.status >= 200) {
          head_size = parsed.consumed;
          break;
        }
        if (response.status == 101) {
          return upstream_failed(502, "upstream switched protocols, which is not supported");
        }
        // Interim responses (103 Early Hints) go through; 100 Continue was ours to send.
        if (response.status != 100 && ex.head.minor_version == 1) {
          ResponseHead interim = response;
          interim.headers = downstream_response_headers(response.headers, BodyFraming{});
          std::string bytes;
          append_response_head(&bytes, interim);
          if (!write_all(ex.client.stream, bytes.data(), bytes.size(),
                         deadline_after(sc.idle_timeout))
                   .ok()) {
            return client_gone("client closed during an interim response");
          }
        }
        upstream_buf.erase(0, parsed.consumed);
        continue;
      }
      char buf[16 * 1024];
      IoResult r = read_some(*conn->stream, buf, sizeof(buf), deadline_after(sc.upstream_timeout),
                             ex.client.stream.fd());
      if (r.ok()) {
        upstream_buf.append(buf, r.bytes);
        continue;
      }
      if (r.status == IoResult::Status::kWatchedPeerGone) {
        return client_gone("client closed the connection before the response");
      }
      if (r.status == IoResult::Status::kTimeout) {
        return upstream_failed(504,
                               "no response headers within " + seconds_text(sc.upstream_timeout));
      }
      if (upstream_buf.empty() && may_retry && retryable) {
        retry = true;
        break;
      }
      return upstream_failed(502, r.status == IoResult::Status::kEof
                                      ? "upstream closed the connection without a response"
                                      : "reading the upstream response: " + r.error);
    }
    if (!retry) break;
    upstream_buf.clear();
  }
  ex.summary.timings.upstream_headers = Clock::now();

  FramingResult framing = response_framing(ex.head.method, response);
  if (framing.error_status != 0) return upstream_failed(502, framing.error);
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
  ResponseHead downstream;
  downstream.status = response.status;
  downstream.reason = response.reason;
  downstream.headers = downstream_response_headers(response.headers, client_framing);
  if (ex.client_close) downstream.headers.push_back({"Connection", "close"});
  if (ex.observer) ex.observer->on_response_head(response);
  ex.summary.status = response.status;

  // Response body: upstream -> client, each piece written as soon as it arrives.
  BodyReader body(framing.framing, upstream_buf.substr(head_size));
  BodyEncoder encoder(client_framing);
  std::string out;
  append_response_head(&out, downstream);
  // Arrival of the oldest body bytes in `out`; bytes that came with the head arrived with it.
  Clock::time_point out_since{};
  bool first = true;
  auto tee = [&](std::string_view piece) {
    Clock::time_point arrived = first ? ex.summary.timings.upstream_headers : Clock::now();
    if (out_since == Clock::time_point{}) out_since = arrived;
    if (ex.observer) ex.observer->on_response_body(piece, arrived);
    encoder.append(&out, piece);
  };
  while (true) {
    if (!body.done() && (!first || body.has_buffered())) {
      IoResult r = body.read_once(*conn->stream, deadline_after(sc.upstream_timeout),
                                  ex.client.stream.fd(), tee);
      if (r.status == IoResult::Status::kWatchedPeerGone) {
        ex.summary.response_body_bytes = body.decoded_bytes();
        return client_gone("client closed the connection mid-response");
      }
      if (!r.ok()) {
        // Headers are out: the only honest signal left is to cut the connection, so the
        // client sees an incomplete body rather than a silent success.
        ex.summary.outcome = Outcome::kUpstreamError;
        ex.summary.error =
            r.status == IoResult::Status::kTimeout
                ? "upstream idle for " + seconds_text(sc.upstream_timeout) + " mid-response"
                : r.error;
        ex.summary.response_body_bytes = body.decoded_bytes();
        ex.client_close = true;
        if (!out.empty()) {
          write_all(ex.client.stream, out.data(), out.size(), deadline_after(sc.idle_timeout));
        }
        return finish(ex);
      }
    }
    first = false;
    if (body.done()) encoder.finish(&out);
    if (!out.empty()) {
      IoResult w =
          write_all(ex.client.stream, out.data(), out.size(), deadline_after(sc.idle_timeout));
      if (!w.ok()) {
        ex.summary.response_body_bytes = body.decoded_bytes();
        return client_gone("writing to the client: " + w.error);
      }
      ExchangeTimings& t = ex.summary.timings;
      if (out_since != Clock::time_point{}) {
        const Clock::time_point written = Clock::now();
        const Clock::duration delay = written - out_since;
        ++t.response_chunks;
        t.chunk_delay_total += delay;
        if (delay > t.chunk_delay_max) t.chunk_delay_max = delay;
        if (t.first_body_byte == Clock::time_point{}) t.first_body_byte = written;
        out_since = Clock::time_point{};
      }
      out.clear();
    }
    if (body.done()) break;
  }
  ex.summary.response_body_bytes = body.decoded_bytes();

  const bool reusable = request_sent_fully && response.minor_version == 1 &&
                        !headers_have_token(response.headers, "Connection", "close") &&
                        framing.framing.kind != BodyFraming::Kind::kUntilClose &&
                        body.take_leftover().empty();
  if (reusable) pool_.release(std::move(conn));
  return finish(ex);
}

}  // namespace lp
