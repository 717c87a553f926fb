#include "proxy/capture_queue.h"

#include <algorithm>
#include <vector>

namespace lp {
namespace {

// What a queued frame costs in memory, which is what the bound is about: its heap capacity (a
// buffer handed over whole may be up to twice its size), or its size when it is stored inside
// the string object itself.
size_t cost_of(const std::string& frames) {
  static const size_t kInline = std::string().capacity();
  return frames.capacity() > kInline ? frames.capacity() : frames.size();
}

}  // namespace

bool CaptureQueue::push(std::string&& frame, bool force) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t cost = cost_of(frame);
    if (bytes_ + outside_ + cost > (force ? forced_max_bytes_ : max_bytes_)) return false;
    bytes_ += cost;
    frames_.push_back(std::move(frame));
    if (bytes_ >= wake_at_bytes_) {
      wake_at_bytes_ = kNoWaiter;
      wake = true;
    }
  }
  if (wake) cv_.notify_one();
  return true;
}

size_t CaptureQueue::pop_batch(std::string* out, size_t max_bytes,
                               std::chrono::steady_clock::time_point first_frame_deadline,
                               std::chrono::steady_clock::duration batch_age) {
  // Frames are taken (moved, O(1) each) under the mutex and copied into `out` after it is
  // released: producers push on client threads, and a copy of a whole batch (and the frees of
  // its frames) under the mutex would hold each of them up for as long.
  std::vector<std::string> taken;
  size_t taken_bytes = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    wake_at_bytes_ = 1;
    const bool any = cv_.wait_until(lock, first_frame_deadline,
                                    [&] { return closed_ || woken_ || !frames_.empty(); });
    wake_at_bytes_ = kNoWaiter;
    if (!any || frames_.empty()) {
      woken_ = false;
      return 0;
    }
    // A batch closes when full or when its first frame is batch_age old: a quiet proxy still
    // ships each exchange within batch_age.
    auto batch_deadline = std::chrono::steady_clock::now() + batch_age;
    const size_t start = out->size();
    while (true) {
      while (!frames_.empty() &&
             (taken.empty() || start + taken_bytes + frames_.front().size() <= max_bytes)) {
        std::string& f = frames_.front();
        bytes_ -= cost_of(f);
        outside_ += cost_of(f);
        taken_bytes += f.size();
        taken.push_back(std::move(f));
        frames_.pop_front();
      }
      const size_t size = start + taken_bytes;
      if (closed_ || woken_ || size >= max_bytes || !frames_.empty()) break;
      if (std::chrono::steady_clock::now() >= batch_deadline) break;
      // Sleep until the batch could be filled or it is old enough, not once per push:
      // producers wake this thread only when the queue holds `room` bytes.
      const size_t room = max_bytes - size;
      wake_at_bytes_ = room;
      cv_.wait_until(lock, batch_deadline, [&] { return closed_ || woken_ || bytes_ >= room; });
      wake_at_bytes_ = kNoWaiter;
    }
    woken_ = false;
  }
  out->reserve(out->size() + taken_bytes);
  for (std::string& f : taken) {
    out->append(f);
    std::string().swap(f);  // freed as it is copied: the batch and its frames are not both held
  }
  return taken.size();
}

bool CaptureQueue::wait(std::chrono::steady_clock::time_point deadline, bool for_high_water) {
  // outside_ changes only on the calling (shipper) thread: during the wait the mark is a
  // number of queued bytes. However much the shipper holds, the mark is at least a quarter of
  // high_water queued: with nothing queued there is nothing to move to the spool (a wait that
  // ended at once would spin), and a trickle of small cuts would cost an fsync each.
  const size_t held = outside();
  const size_t floor = std::max<size_t>(high_water_ / 4, 1);
  const size_t mark = std::max(held < high_water_ ? high_water_ - held : 0, floor);
  return wait_until(deadline, for_high_water ? mark : kNoWaiter) >= mark;
}

bool CaptureQueue::past_high_water() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_ + outside_ >= high_water_;
}

bool CaptureQueue::wait_for_bytes(std::chrono::steady_clock::time_point deadline, size_t n) {
  return wait_until(deadline, n) >= n;
}

size_t CaptureQueue::wait_until(std::chrono::steady_clock::time_point deadline, size_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  wake_at_bytes_ = n;
  cv_.wait_until(lock, deadline, [&] { return closed_ || woken_ || bytes_ >= n; });
  wake_at_bytes_ = kNoWaiter;
  woken_ = false;
  return bytes_;
}

void CaptureQueue::wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

bool CaptureQueue::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

void CaptureQueue::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

void CaptureQueue::set_outside(size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  outside_ = bytes;
}

size_t CaptureQueue::outside() const {
  std::lock_guard<std::mutex> lock(mu_);
  return outside_;
}

size_t CaptureQueue::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

}  // namespace lp
