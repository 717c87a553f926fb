#include "proxy/listener.h"

#include <optional>
#include <stdexcept>

namespace lp {

tcp::acceptor listen_on(asio::io_context& io, const std::string& host, int port, int backlog) {
  const std::string port_text = std::to_string(port);
  tcp::resolver resolver(io);
  error_code ec;
  auto results = resolver.resolve(host.empty() ? std::string("0.0.0.0") : host, port_text,
                                  tcp::resolver::passive, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + host + ":" + port_text + ": " + ec.message());
  }
  std::string error = "no address";
  std::optional<tcp::acceptor> acceptor;
  for (int pass = 0; pass < 2 && !acceptor; ++pass) {
    for (const auto& r : results) {
      const tcp::endpoint ep = r.endpoint();
      if ((pass == 0) != ep.address().is_v4() || acceptor) continue;
      tcp::acceptor a(io);
      a.open(ep.protocol(), ec);
      if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) a.bind(ep, ec);
      if (!ec) a.listen(backlog, ec);
      if (ec) {
        error = ec.message();
      } else {
        acceptor.emplace(std::move(a));
      }
    }
  }
  if (!acceptor)
    throw std::runtime_error("cannot listen on " + host + ":" + port_text + ": " + error);
  return std::move(*acceptor);
}

std::string listener_url(const tcp::acceptor& acceptor) {
  error_code ec;
  const tcp::endpoint bound = acceptor.local_endpoint(ec);
  const std::string h = bound.address().to_string();
  return "http://" + (bound.address().is_v6() ? "[" + h + "]" : h) + ":" +
         std::to_string(bound.port());
}

}  // namespace lp
