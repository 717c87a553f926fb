#include "proxy/upstream_pool.h"

namespace lp {
namespace {

// An idle keep-alive connection should have nothing to read. Readable means the server
// closed it (EOF) or sent something unsolicited; either way it cannot carry a request.
// TLS streams may find only session tickets, which read_some absorbs (kWouldBlock).
bool still_open(Stream& s) {
  char probe;
  return s.read_some(&probe, 1) == Stream::kWouldBlock;
}

}  // namespace

std::unique_ptr<UpstreamConnection> UpstreamPool::take_idle(const Endpoint& endpoint) {
  std::vector<std::unique_ptr<UpstreamConnection>> stale;
  std::unique_ptr<UpstreamConnection> found;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = idle_.find(endpoint.key);
    if (it == idle_.end()) return nullptr;
    auto& list = it->second;
    auto oldest_allowed = Clock::now() - options_.max_idle_age;
    while (!list.empty() && !found) {
      std::unique_ptr<UpstreamConnection> c = std::move(list.back());
      list.pop_back();
      if (c->idle_since < oldest_allowed) {
        stale.push_back(std::move(c));
      } else {
        found = std::move(c);
      }
    }
  }
  // Closing sockets (and the liveness probe) happens outside the lock.
  if (found && !still_open(*found->stream)) return take_idle(endpoint);
  return found;
}

std::unique_ptr<UpstreamConnection> UpstreamPool::acquire(const Endpoint& endpoint,
                                                          Deadline connect_deadline,
                                                          std::string* error) {
  if (auto conn = take_idle(endpoint)) {
    conn->reused = true;
    return conn;
  }
  int fd = connect_tcp(endpoint.host, endpoint.port, connect_deadline, error);
  if (fd < 0) return nullptr;
  auto conn = std::make_unique<UpstreamConnection>();
  conn->endpoint = &endpoint;
  if (endpoint.tls) {
    conn->stream = endpoint.tls->handshake(fd, endpoint.host, connect_deadline, error);
    if (!conn->stream) return nullptr;
  } else {
    conn->stream = std::make_unique<PlainStream>(fd);
  }
  return conn;
}

void UpstreamPool::release(std::unique_ptr<UpstreamConnection> conn) {
  conn->idle_since = Clock::now();
  conn->reused = false;
  std::unique_ptr<UpstreamConnection> evicted;
  std::lock_guard<std::mutex> lock(mu_);
  auto& list = idle_[conn->endpoint->key];
  if (list.size() >= options_.max_idle_per_endpoint) {
    evicted = std::move(list.front());  // the coldest goes
    list.erase(list.begin());
  }
  list.push_back(std::move(conn));
}

void UpstreamPool::clear() {
  decltype(idle_) idle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle.swap(idle_);
  }
}

}  // namespace lp
