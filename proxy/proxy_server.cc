#include "proxy/proxy_server.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <stdexcept>

#include "common/thread_name.h"
#include "proxy/client_session.h"
#include "proxy/listener.h"

namespace lp {

ProxyServer::ProxyServer(const ServerConfig& listener, ConsoleLog& console)
    : listener_(listener), console_(console) {
  size_t n = listener.threads;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (size_t i = 0; i < n; ++i) loops_.push_back(std::make_unique<EventLoop>());
}

ProxyServer::~ProxyServer() {
  acceptor_.reset();
  // Pooled upstream sockets and unfinished sessions go before the io_contexts they use.
  for (auto& loop : loops_) loop->pool.clear();
}

void ProxyServer::bind() {
  // A deep backlog: bursts of hundreds of SDK connections must not hit SYN retries.
  acceptor_.emplace(listen_on(loops_[0]->io, listener_.host, listener_.port, 4096));
  url_ = listener_url(*acceptor_);
}

void ProxyServer::use(std::shared_ptr<const Generation> generation) {
  std::lock_guard<std::mutex> lock(current_mu_);
  current_ = generation;
  const uint64_t id = generation->forwarder().generation();
  for (auto& loop : loops_) {
    if (running_) {
      asio::post(loop->io, [l = loop.get(), generation, id] { l->use(generation, id); });
    } else {
      loop->use(generation, id);
    }
  }
}

std::shared_ptr<const Generation> ProxyServer::current() const {
  std::lock_guard<std::mutex> lock(current_mu_);
  return current_;
}

void ProxyServer::run() {
  {
    std::lock_guard<std::mutex> lock(current_mu_);
    running_ = true;
  }
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (size_t i = 0; i < loops_.size(); ++i) {
    guards.push_back(asio::make_work_guard(loops_[i]->io));
    loops_[i]->thread = std::thread([&io = loops_[i]->io, i] {
      name_this_thread("lp-loop-" + std::to_string(i));
      io.run();
    });
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
  if (!connections_.try_open(listener_.max_connections)) {
    // A fresh socket's send buffer is empty: this small answer never blocks.
    error_code ignored;
    socket.non_blocking(true, ignored);
    asio::write(socket, asio::buffer(plain_response(503, "too many connections")), ignored);
    return;
  }
  SessionDeps deps{console_, connections_, stopping_};
  asio::co_spawn(loop.io, serve_client(deps, loop, std::move(socket)),
                 [this](const std::exception_ptr& e) { log_escaped(e); });
}

}  // namespace lp
