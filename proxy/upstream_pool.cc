#include "proxy/upstream_pool.h"

namespace lp {

std::unique_ptr<UpstreamConnection> UpstreamPool::take_idle(const Endpoint& endpoint) {
  // An exchange of an older generation never gets a connection of the current one: that
  // generation could go while the exchange still holds it.
  if (endpoint.generation != generation_) return nullptr;
  auto it = idle_.find(endpoint.key);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  const auto oldest_allowed = Clock::now() - options_.max_idle_age;
  while (!list.empty()) {
    std::unique_ptr<UpstreamConnection> c = std::move(list.back());
    list.pop_back();
    publish(idle_count() - 1);
    if (c->idle_since >= oldest_allowed && c->still_open()) {
      c->reused = true;
      return c;
    }
  }
  return nullptr;
}

void UpstreamPool::release(std::unique_ptr<UpstreamConnection> conn) {
  if (conn->endpoint().generation != generation_) return;  // closed here
  conn->idle_since = Clock::now();
  conn->reused = false;
  auto& list = idle_[conn->endpoint().key];
  if (list.size() >= options_.max_idle_per_endpoint) {
    list.erase(list.begin());  // the coldest
    publish(idle_count() - 1);
  }
  list.push_back(std::move(conn));
  publish(idle_count() + 1);
}

}  // namespace lp
