// The on-disk spool: capture batches that could not be delivered to the log server wait
// here, in order, until it answers again; it survives a proxy restart. One file per batch,
// "{counter:020}-{seq:020}-{proxy_id}.batch" (characters of proxy_id outside [A-Za-z0-9._-]
// become '_'), written as "<name>.tmp", fsync'ed, renamed, and the directory fsync'ed, so a
// crash never leaves a half batch under a real name. The counter orders the files: it starts
// at 1 + the largest counter found in the directory, because seq alone restarts at 1 with
// each new proxy_id. Bounded by max_bytes: append() refuses a batch that would exceed it, and
// the caller counts the loss. Single-threaded use (the shipper thread). Two processes must
// never share a spool (both would re-send and delete the same files): the directory is locked
// (flock on "<dir>/.lock") for the Spool's lifetime, and a second one fails to open.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace lp {

class Spool {
 public:
  // Creates the directory (0700) if needed and indexes the batches already there (oldest
  // first by counter); leftover "*.tmp" files are deleted, unrelated files ignored. Throws
  // std::runtime_error naming the directory on failure.
  Spool(std::string dir, uint64_t max_bytes);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Stores a batch behind all others; false if it would exceed max_bytes or the write
  // failed (error() says why).
  bool append(uint64_t seq, const std::string& proxy_id, const std::string& batch);
  // A place in the order for a batch that is not stored yet (one being sent): batches
  // appended later sort after it, so if its send fails, append_at(slot, ...) puts it before
  // them. A slot never used leaves no trace.
  uint64_t reserve() { return next_counter_++; }
  // As append(), but at the place `slot` (from reserve()) instead of behind all others.
  bool append_at(uint64_t slot, uint64_t seq, const std::string& proxy_id,
                 const std::string& batch);
  uint64_t room() const { return max_bytes_ > bytes_ ? max_bytes_ - bytes_ : 0; }
  // Whether a batch of `n` bytes would fit under max_bytes.
  bool has_room(uint64_t n) const { return n <= max_bytes_ && bytes_ + n <= max_bytes_; }
  // A stored batch as read back: `id` names it to next() and remove(); proxy_id and seq are
  // its preamble's.
  struct Stored {
    uint64_t id = 0;
    std::string bytes;
    std::string proxy_id;
    uint64_t seq = 0;
  };
  // The oldest batch, or nullopt when empty. A file that cannot be read or does not decode
  // as a capture batch is skipped (and removed), with error() set.
  std::optional<Stored> front() { return read_from(files_.begin()); }
  // The oldest batch stored after the one `id` names (which may be removed meanwhile), or
  // nullopt when there is none; skips unreadable files as front() does. With front(), lets the
  // caller have several batches in flight, oldest first.
  std::optional<Stored> next(uint64_t id);
  // The size of the batch next(id) would return first, or 0 if none: read before deciding to.
  uint64_t next_size(uint64_t id) const;
  // Removes a batch (after the log server acknowledged it); no-op for an id not stored.
  void remove(uint64_t id);
  // Removes the oldest batch.
  void pop_front() {
    if (!files_.empty()) remove(files_.front().counter);
  }

  bool empty() const { return files_.empty(); }
  size_t count() const { return files_.size(); }
  uint64_t bytes() const { return bytes_; }
  const std::string& error() const { return error_; }

 private:
  struct Entry {
    uint64_t counter;
    std::string name;
    uint64_t size;
  };
  using Files = std::deque<Entry>;  // sorted by counter
  std::optional<Stored> read_from(Files::iterator it);
  Files::iterator find_after(uint64_t id);

  std::string dir_;
  int lock_fd_ = -1;
  uint64_t max_bytes_;
  Files files_;  // oldest first
  uint64_t bytes_ = 0;
  uint64_t next_counter_ = 1;
  std::string error_;
};

}  // namespace lp
