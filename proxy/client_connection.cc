#include "proxy/client_connection.h"

#include <sys/socket.h>

#include <openssl/ssl.h>

#include <cerrno>
#include <utility>

#include "proxy/async_io.h"

namespace lp {
namespace {

// Pipelined bytes kept while watching; more than a request head's worth and the watch ends.
constexpr size_t kMaxAbsorbed = 64 * 1024;

}  // namespace

ClientConnection::ClientConnection(tcp::socket socket, std::string peer_ip)
    : socket_(std::move(socket)),
      watchdog_(socket_.get_executor(),
                [this] {
                  error_code ignored;
                  socket_.cancel(ignored);
                }),
      stream_(socket_, watchdog_),
      peer_ip_(std::move(peer_ip)) {
  error_code ignored;
  socket_.non_blocking(true, ignored);
  // Nagle + delayed ACK would add 40 ms to every small response.
  socket_.set_option(tcp::no_delay(true), ignored);
}

awaitable<IoResult> ClientConnection::start_tls(SSL_CTX* ctx, Deadline deadline) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) co_return IoResult{IoResult::Status::kError, 0, "SSL_new failed"};
  TlsStream& tls = stream_.start_tls(ssl);  // which owns `ssl`
  watchdog_.arm(deadline);
  auto [ec] = co_await tls.async_handshake(asio::ssl::stream_base::server, use_result);
  watchdog_.disarm();
  co_return io_result(ec, watchdog_.fired());
}

std::string ClientConnection::tls_server_name() const {
  const TlsStream* tls = stream_.tls();
  if (tls == nullptr) return {};
  const char* name =
      SSL_get_servername(const_cast<TlsStream*>(tls)->native_handle(), TLSEXT_NAMETYPE_host_name);
  return name ? name : "";
}

void ClientConnection::watch_hangup(std::function<void()> on_gone, bool absorb) {
  on_gone_ = std::move(on_gone);
  absorb_ = absorb;
  watching_ = true;
  ++watch_generation_;
  await_watch_event();
}

void ClientConnection::stop_watch() {
  if (!watching_) return;
  watching_ = false;
  ++watch_generation_;
  on_gone_ = nullptr;
  error_code ignored;
  socket_.cancel(ignored);  // nothing else waits on the client socket meanwhile
}

void ClientConnection::cut() {
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
}

void ClientConnection::await_watch_event() {
  socket_.async_wait(tcp::socket::wait_read,
                     [self = shared_from_this(), generation = watch_generation_](
                         const error_code& ec) { self->on_watch_event(generation, ec); });
}

void ClientConnection::on_watch_event(uint64_t generation, const error_code& ec) {
  if (ec || !watching_ || generation != watch_generation_) return;
  char probe;
  const ssize_t r = ::recv(socket_.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    await_watch_event();
    return;
  }
  if (r <= 0) {  // EOF or a reset: the client is gone
    hung_up_ = true;
    watching_ = false;
    auto on_gone = std::move(on_gone_);
    on_gone_ = nullptr;
    if (on_gone) on_gone();
    return;
  }
  if (!absorb_ || tls() || buffer.size() >= kMaxAbsorbed) {
    watching_ = false;
    return;
  }
  const size_t old_size = buffer.size();
  buffer.resize(kMaxAbsorbed);
  error_code read_ec;
  const size_t n =
      socket_.read_some(asio::buffer(buffer.data() + old_size, kMaxAbsorbed - old_size), read_ec);
  buffer.resize(old_size + (read_ec ? 0 : n));
  await_watch_event();
}

}  // namespace lp
