#include "proxy/upstream_proxy_connect.h"

#include <functional>
#include <vector>

#include "proxy/async_io.h"

namespace lp {
namespace {

// Larger than any SOCKS5 reply (262 bytes); a CONNECT head may take a few peeks.
constexpr size_t kPeekSize = 4096;

using Parser = std::function<ProxyReply(std::string_view)>;

std::string target_text(const std::string& host, uint16_t port) {
  const std::string h =
      host.find(':') != std::string::npos && !host.starts_with("[") ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

// Reads one reply: peeks at what has arrived, parses it after what came before, and takes off
// the socket only what belongs to the reply. kOk leaves the outcome in *reply.
awaitable<IoResult> read_reply(tcp::socket& socket, Watchdog& watchdog, Deadline deadline,
                               Parser parse, ProxyReply* reply) {
  std::vector<char> buf(kPeekSize);
  std::string got;
  while (true) {
    error_code ec;
    const size_t n = socket.receive(asio::buffer(buf), tcp::socket::message_peek, ec);
    if (ec == asio::error::would_block) {
      watchdog.arm(deadline);
      auto [wait_ec] = co_await socket.async_wait(tcp::socket::wait_read, use_result);
      watchdog.disarm();
      if (wait_ec || watchdog.fired()) co_return io_result(wait_ec, watchdog.fired());
      continue;
    }
    if (ec) co_return io_result(ec, false);
    const std::string seen = got + std::string(buf.data(), n);
    *reply = parse(seen);
    size_t take = n;
    if (reply->state == ProxyReply::State::kOk) take = reply->consumed - got.size();
    if (reply->state == ProxyReply::State::kError) take = 0;
    if (take > 0) {
      socket.receive(asio::buffer(buf.data(), take), 0, ec);
      if (ec) co_return io_result(ec, false);
    }
    if (reply->state != ProxyReply::State::kNeedMore) co_return IoResult{};
    got = seen;
  }
}

class Handshake {
 public:
  Handshake(tcp::socket& socket, Watchdog& watchdog, const UpstreamProxy& proxy,
            const std::string& host, uint16_t port, Deadline deadline)
      : socket_(socket),
        watchdog_(watchdog),
        proxy_(proxy),
        host_(host),
        port_(port),
        deadline_(deadline) {}

  awaitable<IoResult> socks5();
  awaitable<IoResult> http_connect();

 private:
  // One request and its reply: kOk with *reply parsed (which may be the proxy's refusal), or
  // the I/O failure in words.
  awaitable<IoResult> exchange(const std::string& request, Parser parse, const char* step,
                               ProxyReply* reply);
  IoResult fail(IoResult::Status status, const std::string& what) const {
    IoResult r;
    r.status = status;
    r.error = "upstream proxy " + proxy_.display() + ": " + what;
    return r;
  }

  tcp::socket& socket_;
  Watchdog& watchdog_;
  const UpstreamProxy& proxy_;
  const std::string& host_;
  uint16_t port_;
  Deadline deadline_;
};

awaitable<IoResult> Handshake::exchange(const std::string& request, Parser parse, const char* step,
                                        ProxyReply* reply) {
  const IoResult w = co_await write_all(socket_, watchdog_, request, deadline_);
  IoResult r = w;
  if (w.ok()) r = co_await read_reply(socket_, watchdog_, deadline_, std::move(parse), reply);
  if (r.ok()) co_return r;
  const std::string during = std::string(" during the ") + step;
  if (r.status == IoResult::Status::kTimeout) co_return fail(r.status, "timed out" + during);
  if (r.status == IoResult::Status::kEof) {
    co_return fail(IoResult::Status::kError, "proxy closed the connection" + during);
  }
  co_return fail(IoResult::Status::kError, r.error + during);
}

awaitable<IoResult> Handshake::socks5() {
  const bool offer_password = proxy_.has_credentials;
  ProxyReply reply;
  const IoResult greeted = co_await exchange(
      socks5_greeting(offer_password),
      [offer_password](std::string_view b) {
        return socks5_parse_method_selection(b, offer_password);
      },
      "SOCKS5 greeting", &reply);
  if (!greeted.ok()) co_return greeted;
  if (reply.state == ProxyReply::State::kError)
    co_return fail(IoResult::Status::kError, reply.error);
  std::string request, error;
  if (reply.method == kSocks5Password) {
    if (!socks5_password_request(proxy_.user, proxy_.password, &request, &error)) {
      co_return fail(IoResult::Status::kError, error);
    }
    const IoResult answered =
        co_await exchange(request, socks5_parse_password_reply, "SOCKS5 authentication", &reply);
    if (!answered.ok()) co_return answered;
    if (reply.state == ProxyReply::State::kError) {
      co_return fail(IoResult::Status::kError, reply.error);
    }
  }
  const std::string target = target_text(host_, port_);
  if (!socks5_connect_request(host_, port_, &request, &error)) {
    co_return fail(IoResult::Status::kError, error);
  }
  const IoResult connected =
      co_await exchange(request, socks5_parse_connect_reply, "SOCKS5 CONNECT", &reply);
  if (!connected.ok()) co_return connected;
  if (reply.state == ProxyReply::State::kError) {
    co_return fail(IoResult::Status::kError, "cannot reach " + target + ": " + reply.error);
  }
  co_return IoResult{};
}

awaitable<IoResult> Handshake::http_connect() {
  std::string request, error;
  if (!http_connect_request(proxy_, host_, port_, &request, &error)) {
    co_return fail(IoResult::Status::kError, error);
  }
  const bool sent_credentials = proxy_.has_credentials;
  ProxyReply reply;
  const IoResult answered = co_await exchange(
      request,
      [sent_credentials](std::string_view b) {
        return http_parse_connect_reply(b, sent_credentials);
      },
      "CONNECT", &reply);
  if (!answered.ok()) co_return answered;
  if (reply.state == ProxyReply::State::kError) {
    co_return fail(IoResult::Status::kError,
                   "CONNECT " + target_text(host_, port_) + ": " + reply.error);
  }
  co_return IoResult{};
}

}  // namespace

awaitable<IoResult> upstream_proxy_handshake(tcp::socket& socket, Watchdog& watchdog,
                                             const UpstreamProxy& proxy, const std::string& host,
                                             uint16_t port, Deadline deadline) {
  error_code ignored;
  socket.non_blocking(true, ignored);
  Handshake handshake(socket, watchdog, proxy, host, port, deadline);
  if (proxy.socks()) {
    const IoResult r = co_await handshake.socks5();
    co_return r;
  }
  const IoResult r = co_await handshake.http_connect();
  co_return r;
}

}  // namespace lp
