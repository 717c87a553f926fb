// Polls `cond` until it holds or `timeout` passes, for unit tests that wait on another
// thread's progress which gives no signal to wait on. True if it held.
#pragma once

#include <chrono>
#include <thread>

namespace lp::test {

template <typename F>
bool await(F cond, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace lp::test
