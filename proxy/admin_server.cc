#include "proxy/admin_server.h"

#include <boost/asio/post.hpp>
#include <memory>

#include "common/thread_name.h"
#include "proxy/client_connection.h"
#include "proxy/client_session.h"
#include "proxy/listener.h"

namespace lp {
namespace {

constexpr size_t kMaxHeadBytes = 8 * 1024;
constexpr auto kRequestTimeout = std::chrono::seconds(5);

std::string admin_response_bytes(const AdminResponse& r, bool head_only) {
  ResponseHead head;
  head.status = r.status;
  head.reason = std::string(reason_phrase(r.status));
  head.headers = {{"Content-Type", r.content_type},
                  {"Content-Length", std::to_string(r.body.size())},
                  {"Cache-Control", "no-store"}};
  if (!r.allow.empty()) head.headers.push_back({"Allow", r.allow});
  head.headers.push_back({"Connection", "close"});
  std::string out;
  append_response_head(&out, head);
  if (!head_only) out += r.body;
  return out;
}

}  // namespace

AdminResponse admin_dispatch(const RequestHead& head, const AdminHandlers& handlers) {
  const std::string_view path = head.path();
  const bool get = head.method == "GET" || head.method == "HEAD";
  auto method_not_allowed = [](std::string_view allowed) {
    return AdminResponse{405, "text/plain; charset=utf-8",
                         "method not allowed: use " + std::string(allowed) + "\n",
                         std::string(allowed)};
  };
  if (path == "/metrics") {
    if (!get) return method_not_allowed("GET, HEAD");
    return {200, "text/plain; version=0.0.4; charset=utf-8", handlers.metrics(), ""};
  }
  if (path == "/healthz") {
    if (!get) return method_not_allowed("GET, HEAD");
    return {200, "text/plain; charset=utf-8", "ok\n", ""};
  }
  if (path == "/readyz") {
    if (!get) return method_not_allowed("GET, HEAD");
    return handlers.ready();
  }
  if (path == "/reload") {
    if (head.method != "POST") return method_not_allowed("POST");
    return handlers.reload();
  }
  return {404, "text/plain; charset=utf-8",
          "no admin endpoint " + std::string(path) +
              " (there are GET /metrics, /healthz, /readyz and POST /reload)\n",
          ""};
}

AdminServer::AdminServer(AdminHandlers handlers) : handlers_(std::move(handlers)) {}

AdminServer::~AdminServer() {
  stop();
}

void AdminServer::bind(const std::string& host, int port) {
  acceptor_.emplace(listen_on(io_, host, port, 64));
  url_ = listener_url(*acceptor_);
}

void AdminServer::start() {
  asio::co_spawn(io_, accept_loop(), asio::detached);
  thread_ = std::thread([this] {
    name_this_thread("lp-admin");
    io_.run();
  });
}

void AdminServer::stop() {
  if (!thread_.joinable()) return;
  io_.stop();
  thread_.join();
}

awaitable<void> AdminServer::accept_loop() {
  while (true) {
    auto [ec, socket] = co_await acceptor_->async_accept(io_, use_result);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
  }
}

awaitable<void> AdminServer::serve(tcp::socket socket) {
  error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  auto conn = std::make_shared<ClientConnection>(std::move(socket),
                                                 ec ? std::string() : peer.address().to_string());
  const Deadline deadline = deadline_after(kRequestTimeout);
  HeadLimits limits;
  limits.max_head_bytes = kMaxHeadBytes;
  RequestHead head;
  while (true) {
    const ParseResult parsed = parse_request_head(conn->buffer, limits, &head);
    if (parsed.state == ParseResult::State::kDone) break;
    if (parsed.state == ParseResult::State::kError) {
      co_await conn->write_all(plain_response(parsed.error_status, parsed.error),
                               deadline_after(std::chrono::seconds(1)));
      co_return;
    }
    const ReadResult r = co_await conn->read_some(kMaxHeadBytes, deadline);
    if (!r.io.ok()) co_return;
    conn->buffer.append(r.data);
  }
  const AdminResponse response = admin_dispatch(head, handlers_);
  co_await conn->write_all(admin_response_bytes(response, head.method == "HEAD"), deadline);
  error_code ignored;
  conn->socket().shutdown(tcp::socket::shutdown_send, ignored);
  conn->socket().close(ignored);
}

}  // namespace lp
