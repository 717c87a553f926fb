#include "proxy/client_session.h"

#include "common/http_message.h"

namespace lp {
namespace {

constexpr size_t kHeadReadSize = 16 * 1024;

// Keeps the loop's registry and the connection count right however the session ends
// (including its coroutine frame being destroyed with the io_context).
class SessionEntry {
 public:
  SessionEntry(EventLoop& loop, ClientConnection& conn, ConnectionCount& count)
      : loop_(loop), count_(count) {
    session.conn = &conn;
    loop_.sessions.insert(&session);
  }
  ~SessionEntry() {
    loop_.sessions.erase(&session);
    count_.closed();
  }
  Session session;

 private:
  EventLoop& loop_;
  ConnectionCount& count_;
};

awaitable<void> reject(ClientConnection& conn, int status, const std::string& reason) {
  co_await conn.write_all(plain_response(status, reason), deadline_after(std::chrono::seconds(1)));
}

// Reads until a whole request head is in conn.buffer; false when the connection should close
// (peer gone, timeout, shutdown, or a malformed head, which was answered).
awaitable<bool> read_request_head(const SessionDeps& deps, const ServerConfig& sc, bool proxy_forms,
                                  ClientConnection& conn, RequestHead* head) {
  HeadLimits limits;
  limits.max_head_bytes = sc.max_header_bytes;
  limits.proxy_forms = proxy_forms;
  bool started = !conn.buffer.empty();
  Deadline deadline = deadline_after(started ? sc.header_timeout : sc.idle_timeout);
  ParseResult parsed;
  while (true) {
    parsed = parse_request_head(conn.buffer, limits, head);
    if (parsed.state != ParseResult::State::kIncomplete) break;
    const ReadResult r = co_await conn.read_some(kHeadReadSize, deadline);
    if (!r.io.ok()) {
      if (r.io.status == IoResult::Status::kTimeout && started && !deps.stopping.load()) {
        co_await reject(conn, 408, "request head timed out");
      }
      co_return false;
    }
    conn.buffer.append(r.data);
    if (!started) {
      started = true;
      deadline = deadline_after(sc.header_timeout);
    }
  }
  if (parsed.state == ParseResult::State::kError) {
    deps.console.line("[proxy] " + conn.peer_ip() + ": " + std::to_string(parsed.error_status) +
                      " " + parsed.error);
    co_await reject(conn, parsed.error_status, parsed.error);
    co_return false;
  }
  conn.buffer.erase(0, parsed.consumed);
  co_return true;
}

}  // namespace

std::string plain_response(int status, const std::string& reason,
                           const std::vector<Header>& extra_headers) {
  ResponseHead head;
  head.status = status;
  head.reason = std::string(reason_phrase(status));
  const std::string body = reason + "\n";
  head.headers = {{"Content-Type", "text/plain; charset=utf-8"},
                  {"Content-Length", std::to_string(body.size())},
                  {"Connection", "close"}};
  head.headers.insert(head.headers.end(), extra_headers.begin(), extra_headers.end());
  std::string out;
  append_response_head(&out, head);
  return out + body;
}

awaitable<void> serve_client(SessionDeps deps, EventLoop& loop, tcp::socket socket) {
  error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  auto conn = std::make_shared<ClientConnection>(std::move(socket),
                                                 ec ? std::string() : peer.address().to_string());
  SessionEntry entry(loop, *conn, deps.connections);
  RequestHead head;
  // Set once a forward-proxy CONNECT was intercepted: the connection speaks TLS as this
  // destination and every request on it goes there.
  std::optional<ForwardTarget> intercepted;
  while (!deps.stopping.load()) {
    entry.session.awaiting_request = true;
    // The wait's limits come from the generation current when it began, held while it lasts.
    const std::shared_ptr<const Generation> waiting = loop.generation;
    const bool proxy_forms = waiting->forwarder().forward_proxy_enabled() && !intercepted;
    const bool have_head =
        co_await read_request_head(deps, waiting->config().server, proxy_forms, *conn, &head);
    entry.session.awaiting_request = false;
    if (!have_head) break;
    // Held for the whole exchange: a reload meanwhile does not pull its config away.
    const std::shared_ptr<const Generation> generation = loop.generation;
    Forwarder& forwarder = generation->forwarder();
    bool keep_alive = false;
    if (intercepted) {
      keep_alive = co_await forwarder.serve_intercepted(*conn, head, *intercepted, loop.pool);
    } else if (forwarder.forward_proxy_enabled() && Forwarder::is_proxy_request(head)) {
      Forwarder::ProxyRequestResult r =
          co_await forwarder.serve_proxy_request(*conn, head, loop.pool);
      keep_alive = r.keep_alive;
      intercepted = std::move(r.intercepted);
    } else {
      keep_alive = co_await forwarder.serve(*conn, head, loop.pool);
    }
    if (!keep_alive) break;
  }
  error_code ignored;
  conn->socket().close(ignored);
}

}  // namespace lp
