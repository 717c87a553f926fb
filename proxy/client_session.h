// A client connection's life on its event loop: read a request head (idle_timeout before the
// first byte, header_timeout for the whole head), hand it to the Forwarder, and go on while
// the connection stays usable and the proxy is not stopping. Malformed heads are answered
// here (400, 414, 431, 408) and the connection closed.
#pragma once

#include "common/config.h"
#include "proxy/asio_base.h"
#include "proxy/console_log.h"
#include "proxy/event_loop.h"
#include "proxy/forwarder.h"

namespace lp {

struct SessionDeps {
  const ServerConfig& config;
  Forwarder& forwarder;
  ConsoleLog& console;
  ConnectionCount& connections;  // closed() is called when the session ends
};

// Runs on `loop`'s thread; `socket` belongs to loop.io.
awaitable<void> serve_client(SessionDeps deps, EventLoop& loop, tcp::socket socket);

// A complete "Connection: close" answer with a one-line text body.
std::string plain_response(int status, const std::string& reason);

}  // namespace lp
