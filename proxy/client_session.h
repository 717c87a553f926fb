// A client connection's life on its event loop: read a request head (idle_timeout before the
// first byte, header_timeout for the whole head), hand it to the Forwarder, and go on while
// the connection stays usable and the proxy is not stopping. Malformed heads are answered
// here (400, 414, 431, 408) and the connection closed.
#pragma once

#include <string>
#include <vector>

#include "common/config.h"
#include "common/http_message.h"
#include "proxy/asio_base.h"
#include "proxy/console_log.h"
#include "proxy/event_loop.h"
#include "proxy/generation.h"

namespace lp {

struct SessionDeps {
  ConsoleLog& console;
  ConnectionCount& connections;  // closed() is called when the session ends
  const std::atomic<bool>& stopping;
};

// Runs on `loop`'s thread; `socket` belongs to loop.io. Each request is served by the
// generation (configuration) current on the loop when its head is complete.
awaitable<void> serve_client(SessionDeps deps, EventLoop& loop, tcp::socket socket);

// A complete "Connection: close" answer with a one-line text body (and `extra_headers`).
std::string plain_response(int status, const std::string& reason,
                           const std::vector<Header>& extra_headers = {});

}  // namespace lp
