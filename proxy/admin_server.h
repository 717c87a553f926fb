// The admin listener (server.admin_host:admin_port): GET /metrics, /healthz, /readyz and
// POST /reload, on its own thread and io_context, so that a scrape or a reload never runs on
// a data-plane loop and a catch-all route keeps owning every path of the proxied listener.
// Requests are small and rare: each connection carries one request (head bounded at 8 KiB and
// 5 s, no body read), answered and closed.
//
// bind() and start() from the main thread, stop() from the main thread after start(); the
// handlers run on the admin thread and must be thread-safe against the data plane.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "common/http_message.h"
#include "proxy/asio_base.h"

namespace lp {

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string allow;  // 405: the methods the path takes
};

struct AdminHandlers {
  std::function<std::string()> metrics;   // Prometheus text
  std::function<AdminResponse()> ready;   // GET /readyz
  std::function<AdminResponse()> reload;  // POST /reload
};

// Which handler answers `head` (pure; 404 / 405 with Allow for the rest).
AdminResponse admin_dispatch(const RequestHead& head, const AdminHandlers& handlers);

class AdminServer {
 public:
  explicit AdminServer(AdminHandlers handlers);
  ~AdminServer();  // stops if running

  // Throws std::runtime_error naming the address and the cause.
  void bind(const std::string& host, int port);
  std::string url() const { return url_; }
  void start();
  void stop();

 private:
  awaitable<void> accept_loop();
  awaitable<void> serve(tcp::socket socket);

  AdminHandlers handlers_;
  asio::io_context io_{1};
  std::optional<tcp::acceptor> acceptor_;
  std::string url_;
  std::thread thread_;
};

}  // namespace lp
