#include "proxy/console_log.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "common/json_writer.h"
#include "common/thread_name.h"
#include "common/time_format.h"

namespace lp {
namespace {

// After a wake-up the writer waits this long for more lines before writing: under load one
// write() then carries many lines and producers find it busy (no wake-up); a line reaches the
// terminal at most this much later.
constexpr auto kLinger = std::chrono::milliseconds(2);
constexpr size_t kMaxWrite = 64 * 1024;

template <class T>
void put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <class T>
T get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Formats timestamps, reusing the last one within the same second.
class TimestampCache {
 public:
  std::string_view format(int64_t t_us) {
    int64_t secs = t_us >= 0 ? t_us / 1000000 : (t_us - 999999) / 1000000;
    if (secs != secs_ || len_ == 0) {
      secs_ = secs;
      std::string s = console_timestamp(std::chrono::system_clock::time_point(
          std::chrono::duration_cast<std::chrono::system_clock::duration>(
              std::chrono::seconds(secs))));
      len_ = s.copy(buf_, sizeof buf_);
    }
    return {buf_, len_};
  }

 private:
  int64_t secs_ = 0;
  char buf_[32];
  size_t len_ = 0;
};

}  // namespace

ConsoleLog::ConsoleLog(bool enabled, Format format, size_t max_queued_lines)
    : enabled_(enabled), format_(format), max_queued_(max_queued_lines) {
  if (enabled_) {
    thread_ = std::thread([this] {
      name_this_thread("lp-console");
      run();
    });
  }
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

void ConsoleLog::append(Kind kind, int64_t t_us, std::initializer_list<std::string_view> parts) {
  if (!enabled_ || (kind == Kind::kStamped && json())) return;
  size_t len = 0;
  for (auto p : parts) len += p.size();
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queued_lines_ >= max_queued_) {
      ++dropped_;
      return;
    }
    put(&queued_, t_us);
    put(&queued_, kind);
    put(&queued_, static_cast<uint32_t>(len));
    for (auto p : parts) queued_.append(p);
    ++queued_lines_;
    if (sleeping_) {
      sleeping_ = false;
      wake = true;
    }
  }
  if (wake) cv_.notify_one();
}

void ConsoleLog::flush() {
  if (!enabled_) return;
  std::unique_lock<std::mutex> lock(mu_);
  if (sleeping_ && !queued_.empty()) {
    sleeping_ = false;
    cv_.notify_one();
  }
  drained_.wait(lock, [this] { return queued_.empty() && !writing_; });
}

void ConsoleLog::run() {
  std::string taken;
  std::string out;
  TimestampCache stamps;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (queued_.empty() && !stop_) {
      sleeping_ = true;
      cv_.wait(lock, [this] { return stop_ || !sleeping_; });
      sleeping_ = false;
      // Let more lines gather; only stop (or flush) cuts this short.
      if (!stop_) cv_.wait_for(lock, kLinger, [this] { return stop_; });
    }
    if (queued_.empty() && stop_) break;
    taken.swap(queued_);
    queued_lines_ = 0;
    uint64_t dropped = dropped_;
    dropped_ = 0;
    writing_ = true;
    lock.unlock();

    for (size_t off = 0; off < taken.size();) {
      const auto t_us = get<int64_t>(taken.data() + off);
      off += sizeof(int64_t);
      const auto kind = get<Kind>(taken.data() + off);
      off += sizeof(Kind);
      const auto len = get<uint32_t>(taken.data() + off);
      off += sizeof(uint32_t);
      const std::string_view text(taken.data() + off, len);
      off += len;
      if (json()) {
        format_record(&out, kind, t_us, text);
      } else {
        if (t_us != kNoTime) out.append(stamps.format(t_us));
        out.append(text);
        out.push_back('\n');
      }
    }
    if (dropped > 0) {
      const std::string text =
          "[console] " + std::to_string(dropped) + " lines dropped (stdout too slow)";
      if (json()) {
        format_record(&out, Kind::kLine, kNoTime, text);
      } else {
        out += text + "\n";
      }
    }
    for (size_t off = 0; off < out.size();) {
      size_t n_max = std::min(out.size() - off, kMaxWrite);
      ssize_t n = ::write(STDOUT_FILENO, out.data() + off, n_max);
      if (n <= 0) break;  // stdout gone: nothing more useful to do with console lines
      off += static_cast<size_t>(n);
    }
    taken.clear();
    out.clear();
    if (taken.capacity() > 4 * kMaxWrite) taken.shrink_to_fit();
    if (out.capacity() > 4 * kMaxWrite) out.shrink_to_fit();

    lock.lock();
    writing_ = false;
    if (queued_.empty()) drained_.notify_all();
  }
  drained_.notify_all();
}

void ConsoleLog::format_record(std::string* out, Kind kind, int64_t t_us, std::string_view text) {
  if (t_us == kNoTime) t_us = micros(std::chrono::system_clock::now());
  char stamp[kRfc3339UsCapacity];
  out->append("{\"time\":\"");
  out->append(stamp, format_rfc3339_us(t_us, stamp));
  out->append("\",");
  if (kind == Kind::kJson) {
    out->append(text);
  } else {
    out->append("\"message\":");
    append_json_string(out, text);
  }
  out->append("}\n");
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
