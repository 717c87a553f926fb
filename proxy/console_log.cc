#include "proxy/console_log.h"

#include <unistd.h>

#include <chrono>
#include <ctime>

namespace lp {

ConsoleLog::ConsoleLog(bool enabled, size_t max_queued_lines)
    : enabled_(enabled), max_queued_(max_queued_lines) {
  if (enabled_) thread_ = std::thread([this] { run(); });
}

ConsoleLog::~ConsoleLog() {
  if (!enabled_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ConsoleLog::line(std::string text) {
  if (!enabled_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= max_queued_) {
      ++dropped_;
      return;
    }
    queue_.push_back(std::move(text));
  }
  cv_.notify_one();
}

void ConsoleLog::flush() {
  if (!enabled_) return;
  std::unique_lock<std::mutex> lock(mu_);
  drained_.wait(lock, [this] { return queue_.empty() && !writing_; });
}

void ConsoleLog::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) break;
    std::string batch;
    while (!queue_.empty() && batch.size() < 64 * 1024) {
      batch += queue_.front();
      batch += '\n';
      queue_.pop_front();
    }
    if (dropped_ > 0) {
      batch += "[console] " + std::to_string(dropped_) + " lines dropped (stdout too slow)\n";
      dropped_ = 0;
    }
    writing_ = true;
    lock.unlock();
    for (size_t off = 0; off < batch.size();) {
      ssize_t n = ::write(STDOUT_FILENO, batch.data() + off, batch.size() - off);
      if (n <= 0) break;  // stdout gone: nothing more useful to do with console lines
      off += static_cast<size_t>(n);
    }
    lock.lock();
    writing_ = false;
    if (queue_.empty()) drained_.notify_all();
  }
  drained_.notify_all();
}

std::string console_timestamp(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

}  // namespace lp
