// The handshake that turns a TCP connection to an upstream proxy into a tunnel to the target:
// SOCKS5 (with user and password when the proxy URL has them) or HTTP CONNECT. It runs after
// the connect to the proxy and before TLS to the target, which the caller then runs over the
// same socket exactly as over a direct connection.
//
// Runs on the thread of the socket's io_context, like every data-plane wait. `watchdog` is the
// caller's, and its on_expire must cancel `socket`: the whole handshake ends by `deadline`.
// Only the bytes of the proxy's replies are taken off the socket (each read peeks first), so on
// success nothing of the target's is left behind in a buffer: the socket is the tunnel.
#pragma once

#include <cstdint>
#include <string>

#include "proxy/asio_base.h"
#include "proxy/io_result.h"
#include "proxy/upstream_proxy.h"
#include "proxy/watchdog.h"

namespace lp {

// kOk, or kTimeout / kError with an error naming the proxy (its display(), no password) and
// the step, e.g. "upstream proxy socks5://10.0.0.1:1080: authentication failed (...)".
// `host` and `proxy` must stay alive until the coroutine completes.
awaitable<IoResult> upstream_proxy_handshake(tcp::socket& socket, Watchdog& watchdog,
                                             const UpstreamProxy& proxy, const std::string& host,
                                             uint16_t port, Deadline deadline);

}  // namespace lp
