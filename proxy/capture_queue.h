// The bounded hand-off between client threads (producers of encoded capture frames) and the
// shipper thread. push() never blocks and never touches the disk. max_bytes bounds all the
// capture memory, counted as the memory the strings hold (capacity included): the frames queued
// plus what the shipper holds outside the queue (batches cut from it, being sent, refused by the
// spool or read back from it). pop_batch() moves what it takes from the one count to the other,
// so nothing is ever uncounted; the shipper then reports what it still holds (set_outside()).
// When the two reach max_bytes push() refuses the frame and the producer marks its exchange
// truncated. End frames are admitted past the bound
// (they are small, and they are how the log server learns an exchange was truncated), into a
// reserve as large as max_bytes (at least 4 MiB, some 10,000 records): past that they are
// refused too, so a long episode of truncation cannot grow the queue without limit. Before
// that, at high_water bytes, the shipper is woken to move the oldest frames to the spool
// (wait()), so the bound is reached only when the spool cannot take them either. A push wakes
// the shipper only when it waits for a first frame, for enough bytes to fill a batch, or for
// the high-water mark.
//
// Threads: push() from any client thread; pop_batch(), wait(), set_outside() from the shipper
// thread only; wake() from any thread (the shipper's sender); close(), bytes() and outside()
// from anywhere.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

namespace lp {

class CaptureQueue {
 public:
  // high_water defaults to half of max_bytes: room for the frames that arrive while the
  // shipper writes a batch to the spool. Like the bound, it counts queued and outside bytes.
  explicit CaptureQueue(size_t max_bytes) : CaptureQueue(max_bytes, max_bytes / 2) {}
  CaptureQueue(size_t max_bytes, size_t high_water)
      : max_bytes_(max_bytes), high_water_(high_water) {}

  // False (frame dropped) when full, unless `force` and the reserve has room; `frames` (one or
  // more encoded frames) is moved from only when admitted.
  bool push(std::string&& frames, bool force = false);
  // Waits until at least one frame is queued or `deadline`, then keeps collecting until
  // `out` holds max_bytes or `batch_age` has passed. A wake() ends either wait early. Returns
  // the number of frames moved; their cost is added to outside().
  size_t pop_batch(std::string* out, size_t max_bytes,
                   std::chrono::steady_clock::time_point first_frame_deadline,
                   std::chrono::steady_clock::duration batch_age);
  // Waits until `deadline`, a wake(), close(), or (if `for_high_water`) the capture memory
  // reaching high_water bytes with at least a quarter of high_water queued (what a cut for the
  // spool can take). True if that holds on return.
  bool wait(std::chrono::steady_clock::time_point deadline, bool for_high_water);
  bool past_high_water() const;  // the capture memory alone, queued or not
  // The same for `n` bytes instead of the high-water mark (the shipper, for a full batch).
  bool wait_for_bytes(std::chrono::steady_clock::time_point deadline, size_t n);
  // Ends the shipper's current or next wait (pop_batch or wait) early; a wake with nobody
  // waiting is kept for the next wait, so it is never lost.
  void wake();
  // Wakes a waiting pop_batch; later pops return at once.
  void close();
  bool closed() const;
  // The capture memory the shipper holds outside the queue, as it last reported it plus what
  // it popped since. Until its next report a freed batch still counts: never too little.
  void set_outside(size_t bytes);
  size_t outside() const;
  size_t bytes() const;  // queued only
  size_t high_water() const { return high_water_; }

 private:
  // Waits until `deadline`, a wake(), close(), or the queue holding `n` bytes; returns the bytes
  // held then.
  size_t wait_until(std::chrono::steady_clock::time_point deadline, size_t n);

  const size_t max_bytes_;
  const size_t forced_max_bytes_ = max_bytes_ + std::max(max_bytes_, size_t{4} << 20);
  const size_t high_water_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> frames_;
  size_t bytes_ = 0;
  size_t outside_ = 0;
  // A waiting shipper is woken when bytes_ reaches this (its first frame, enough to fill its
  // batch, or the high-water mark), so producers do not wake it on every push.
  static constexpr size_t kNoWaiter = SIZE_MAX;
  size_t wake_at_bytes_ = kNoWaiter;
  bool woken_ = false;
  bool closed_ = false;
};

}  // namespace lp
