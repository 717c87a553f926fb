// Opening a listening socket for one of the proxy's listeners (the proxied one, the admin
// one). Startup code: errors are exceptions.
#pragma once

#include <string>

#include "proxy/asio_base.h"

namespace lp {

// Binds host:port (port 0: any free port) with SO_REUSEADDR and no SO_REUSEPORT (a second
// process must fail to bind, not silently share the port), IPv4 preferred for names that
// resolve to both (clients most often dial 127.0.0.1), and listens with `backlog`. Throws
// std::runtime_error "cannot listen on HOST:PORT: cause".
tcp::acceptor listen_on(asio::io_context& io, const std::string& host, int port, int backlog);

// "http://127.0.0.1:5601" (IPv6 in brackets): where `acceptor` listens, its port resolved.
std::string listener_url(const tcp::acceptor& acceptor);

}  // namespace lp
