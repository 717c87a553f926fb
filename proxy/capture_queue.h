// The bounded hand-off between client threads (producers of encoded capture frames) and the
// shipper thread. push() never blocks: when the queue holds max_bytes (counted as the memory
// the queued strings hold, capacity included) it refuses the frame
// and the producer marks its exchange truncated. End frames are admitted past the bound
// (they are small, and they are how the log server learns an exchange was truncated). A push
// wakes the shipper only when it waits for a first frame or for enough bytes to fill a batch.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

namespace lp {

class CaptureQueue {
 public:
  explicit CaptureQueue(size_t max_bytes) : max_bytes_(max_bytes) {}

  // False (frame dropped) when full, unless `force`; `frames` (one or more encoded frames) is
  // moved from only when admitted.
  bool push(std::string&& frames, bool force = false);
  // Waits until at least one frame is queued or `deadline`, then keeps collecting until
  // `out` holds max_bytes or `deadline` passes. Returns the number of frames moved.
  size_t pop_batch(std::string* out, size_t max_bytes,
                   std::chrono::steady_clock::time_point first_frame_deadline,
                   std::chrono::steady_clock::duration batch_age);
  // Wakes a waiting pop_batch; later pops return at once.
  void close();
  size_t bytes() const;

 private:
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> frames_;
  size_t bytes_ = 0;
  // A waiting pop_batch is woken when bytes_ reaches this (its first frame, or enough to fill
  // its batch), so producers do not wake the shipper on every push.
  static constexpr size_t kNoWaiter = SIZE_MAX;
  size_t wake_at_bytes_ = kNoWaiter;
  bool closed_ = false;
};

}  // namespace lp
