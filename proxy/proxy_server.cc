#include "proxy/proxy_server.h"

#include <netdb.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <stdexcept>

#include "proxy/client_session.h"

namespace lp {

ProxyServer::ProxyServer(const Config& config, Forwarder& forwarder, ConsoleLog& console)
    : config_(config), forwarder_(forwarder), console_(console) {
  size_t n = config.server.threads;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (size_t i = 0; i < n; ++i) loops_.push_back(std::make_unique<EventLoop>());
}

ProxyServer::~ProxyServer() {
  acceptor_.reset();
  // Pooled upstream sockets and unfinished sessions go before the io_contexts they use.
  for (auto& loop : loops_) loop->pool.clear();
}

void ProxyServer::bind() {
  const std::string& host = config_.server.host;
  const std::string port = std::to_string(config_.server.port);
  tcp::resolver resolver(loops_[0]->io);
  error_code ec;
  auto results = resolver.resolve(host.empty() ? std::string("0.0.0.0") : host, port,
                                  tcp::resolver::passive, ec);
  if (ec) throw std::runtime_error("cannot listen on " + host + ":" + port + ": " + ec.message());
  std::string error = "no address";
  // Prefer IPv4 for "localhost": clients and SDKs most often dial 127.0.0.1.
  for (int pass = 0; pass < 2 && !acceptor_; ++pass) {
    for (const auto& r : results) {
      const tcp::endpoint ep = r.endpoint();
      if ((pass == 0) != ep.address().is_v4() || acceptor_) continue;
      tcp::acceptor a(loops_[0]->io);
      a.open(ep.protocol(), ec);
      if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) a.bind(ep, ec);
      // A deep backlog: bursts of hundreds of SDK connections must not hit SYN retries.
      if (!ec) a.listen(4096, ec);
      if (ec) {
        error = ec.message();
      } else {
        acceptor_.emplace(std::move(a));
      }
    }
  }
  if (!acceptor_) throw std::runtime_error("cannot listen on " + host + ":" + port + ": " + error);
  const tcp::endpoint bound = acceptor_->local_endpoint(ec);
  const std::string h = bound.address().to_string();
  url_ = "http://" + (bound.address().is_v6() ? "[" + h + "]" : h) + ":" +
         std::to_string(bound.port());
}

void ProxyServer::run() {
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& loop : loops_) {
    guards.push_back(asio::make_work_guard(loop->io));
    loop->thread = std::thread([&io = loop->io] { io.run(); });
  }
  asio::co_spawn(loops_[0]->io, accept_loop(),
                 [this](const std::exception_ptr& e) { log_escaped(e); });
  {
    std::unique_lock<std::mutex> lock(stop_mu_);
    stop_cv_.wait(lock, [this] { return stopping_.load(); });
  }
  // Drain: idle connections were closed by shutdown(); busy ones get `grace`.
  if (!connections_.wait_none(grace)) {
    post_to_loops(&EventLoop::cut_sessions);
    connections_.wait_none(std::chrono::seconds(5));
  }
  guards.clear();
  for (auto& loop : loops_) {
    loop->io.stop();
    loop->thread.join();
  }
}

void ProxyServer::shutdown() {
  if (stopping_.exchange(true)) return;
  forwarder_.begin_shutdown();
  asio::post(loops_[0]->io, [this] {
    error_code ignored;
    if (acceptor_) acceptor_->close(ignored);
  });
  post_to_loops(&EventLoop::close_idle_sessions);
  std::lock_guard<std::mutex> lock(stop_mu_);
  stop_cv_.notify_all();
}

// The data plane reports failures as values; an exception reaching here (std::bad_alloc, a
// bug) ends only the connection it happened on, and says so.
void ProxyServer::log_escaped(const std::exception_ptr& e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    console_.line(std::string("[proxy] connection ended by an exception: ") + ex.what());
  } catch (...) {
    console_.line("[proxy] connection ended by an exception");
  }
}

void ProxyServer::post_to_loops(void (EventLoop::*what)()) {
  for (auto& loop : loops_) asio::post(loop->io, [l = loop.get(), what] { (l->*what)(); });
}

awaitable<void> ProxyServer::accept_loop() {
  asio::steady_timer backoff(loops_[0]->io);
  while (!stopping_) {
    EventLoop& loop = *loops_[next_loop_];
    next_loop_ = (next_loop_ + 1) % loops_.size();
    auto [ec, socket] = co_await acceptor_->async_accept(loop.io, use_result);
    if (stopping_) break;
    if (ec) {
      if (ec == asio::error::no_descriptors || ec.value() == ENFILE) {
        // Out of descriptors: back off briefly instead of spinning on the pending connection.
        console_.line("[proxy] accept: " + ec.message());
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(use_result);
      }
      continue;
    }
    on_accepted(loop, std::move(socket));
  }
}

void ProxyServer::on_accepted(EventLoop& loop, tcp::socket socket) {
  if (!connections_.try_open(config_.server.max_connections)) {
    // A fresh socket's send buffer is empty: this small answer never blocks.
    error_code ignored;
    socket.non_blocking(true, ignored);
    asio::write(socket, asio::buffer(plain_response(503, "too many connections")), ignored);
    return;
  }
  SessionDeps deps{config_.server, forwarder_, console_, connections_};
  asio::co_spawn(loop.io, serve_client(deps, loop, std::move(socket)),
                 [this](const std::exception_ptr& e) { log_escaped(e); });
}

}  // namespace lp
