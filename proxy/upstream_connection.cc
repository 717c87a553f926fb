#include "proxy/upstream_connection.h"

#include <sys/socket.h>

#include <boost/asio/ip/address.hpp>
#include <cerrno>
#include <utility>

#include "proxy/upstream_proxy_connect.h"

namespace lp {

UpstreamConnection::UpstreamConnection(const asio::any_io_executor& executor,
                                       const Endpoint& endpoint)
    : endpoint_(endpoint),
      socket_(executor),
      watchdog_(executor, [this] { cancel(); }),
      stream_(socket_, watchdog_) {}

void UpstreamConnection::cancel() {
  error_code ignored;
  socket_.cancel(ignored);
  if (resolver_) resolver_->cancel();
}

awaitable<bool> UpstreamConnection::open(Deadline deadline, std::string* error) {
  if (endpoint_.proxy) {
    const bool tunnelled = co_await tunnel(deadline, error);
    if (!tunnelled) co_return false;
  } else {
    const bool connected = co_await connect(endpoint_.host, endpoint_.port, deadline, error);
    if (!connected) co_return false;
  }
  if (!endpoint_.tls) co_return true;
  const bool secured = co_await handshake(deadline, error);
  co_return secured;
}

awaitable<bool> UpstreamConnection::tunnel(Deadline deadline, std::string* error) {
  const UpstreamProxy& proxy = *endpoint_.proxy;
  const bool connected = co_await connect(proxy.host, proxy.port, deadline, error);
  if (!connected) {
    *error = "upstream proxy " + proxy.display() + ": " + *error;
    co_return false;
  }
  const IoResult r = co_await upstream_proxy_handshake(socket_, watchdog_, proxy, endpoint_.host,
                                                       endpoint_.port, deadline);
  if (r.ok()) co_return true;
  *error = r.error;
  error_code ignored;
  socket_.close(ignored);
  co_return false;
}

awaitable<bool> UpstreamConnection::connect(const std::string& host, uint16_t port,
                                            Deadline deadline, std::string* error) {
  const std::string service = std::to_string(port);
  std::vector<tcp::endpoint> addresses;
  error_code ec;
  const auto literal = asio::ip::make_address(host, ec);
  if (!ec) {
    addresses.emplace_back(literal, port);
  } else {
    // getaddrinfo runs on asio's resolver thread, so a slow DNS answer stalls no one else.
    resolver_.emplace(socket_.get_executor());
    watchdog_.arm(deadline);
    auto [resolve_ec, results] = co_await resolver_->async_resolve(
        host, service, tcp::resolver::address_configured, use_result);
    watchdog_.disarm();
    resolver_.reset();
    if (watchdog_.fired()) {
      *error = "cannot resolve " + host + ": timed out";
      co_return false;
    }
    if (resolve_ec) {
      *error = "cannot resolve " + host + ": " + resolve_ec.message();
      co_return false;
    }
    for (const auto& r : results) addresses.push_back(r.endpoint());
  }
  *error = "no address for " + host;
  for (const tcp::endpoint& address : addresses) {
    error_code ignored;
    socket_.close(ignored);
    socket_.open(address.protocol(), ec);
    if (ec) {
      *error = "socket: " + ec.message();
      continue;
    }
    socket_.set_option(tcp::no_delay(true), ignored);
    watchdog_.arm(deadline);
    auto [connect_ec] = co_await socket_.async_connect(address, use_result);
    watchdog_.disarm();
    if (!connect_ec && !watchdog_.fired()) {
      socket_.non_blocking(true, ignored);
      co_return true;
    }
    *error = "connect to " + host + ":" + service + ": " +
             (watchdog_.fired() ? std::string("timed out") : error_text(connect_ec));
    if (watchdog_.fired()) break;
  }
  error_code ignored;
  socket_.close(ignored);
  co_return false;
}

awaitable<bool> UpstreamConnection::handshake(Deadline deadline, std::string* error) {
  const TlsClientContext& tls = *endpoint_.tls;
  TlsStream& stream = stream_.start_tls(tls.context());
  if (!tls.prepare(stream.native_handle(), endpoint_.host, error)) co_return false;
  watchdog_.arm(deadline);
  auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::client, use_result);
  watchdog_.disarm();
  if (watchdog_.fired()) {
    *error = "TLS handshake with " + endpoint_.host + " timed out";
    co_return false;
  }
  if (ec) {
    *error = tls.handshake_error(stream.native_handle(), endpoint_.host, ec.message());
    co_return false;
  }
  co_return true;
}

bool UpstreamConnection::still_open() {
  char probe;
  const ssize_t r = ::recv(socket_.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace lp
