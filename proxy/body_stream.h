// Moving a message body from one stream to another without holding it: BodyReader decodes
// the incoming framing one read at a time; BodyEncoder frames pieces for the next hop.
// BodyReader does no I/O of its own in its step functions (read_size, consume_buffered,
// on_read, on_eof): the asynchronous data plane reads and feeds it (async_body.h);
// read_once is the same steps over a blocking Stream (the replay command, tests).
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>

#include "common/http_message.h"
#include "proxy/socket.h"

namespace lp {

class BodyReader {
 public:
  static constexpr size_t kReadSize = 64 * 1024;
  // `leftover`: bytes already received past the message head.
  BodyReader(BodyFraming framing, std::string leftover);

  bool done() const { return done_; }
  // Whether bytes received earlier are waiting to be decoded (no read needed).
  bool has_buffered() const { return !leftover_.empty(); }
  // Whether the rest of a Content-Length body is buffered: consume_buffered() then ends it
  // with no read (a small request usually arrives whole with its head).
  bool buffered_to_end() const {
    return !done_ && framing_.kind == BodyFraming::Kind::kLength && leftover_.size() >= remaining_;
  }
  // Performs at most one read (none while leftover bytes remain) and passes the decoded
  // bytes to sink(std::string_view), possibly in several pieces. kEof before the framing's
  // end is reported as kError ("... ended early"), except for kUntilClose bodies, where EOF
  // is the end.
  template <typename Sink>
  IoResult read_once(Stream& in, Deadline deadline, int watch_fd, Sink&& sink);

  // The steps of read_once for callers that do the reading. While has_buffered(), call
  // consume_buffered() instead of reading; else read at most read_size() bytes and pass them
  // to on_read(), or call on_eof() when the peer closed.
  size_t read_size() const {
    return framing_.kind == BodyFraming::Kind::kLength
               ? static_cast<size_t>(std::min<uint64_t>(remaining_, kReadSize))
               : kReadSize;
  }
  template <typename Sink>
  IoResult consume_buffered(Sink&& sink) {
    std::string data = std::move(leftover_);
    leftover_.clear();
    return consume(data, sink);
  }
  template <typename Sink>
  IoResult on_read(std::string_view data, Sink&& sink) {
    return consume(data, sink);
  }
  IoResult on_eof();
  // Bytes received past the end of the body (the start of a pipelined next message).
  std::string take_leftover() { return std::move(leftover_); }
  uint64_t decoded_bytes() const { return decoded_; }

 private:
  template <typename Sink>
  IoResult consume(std::string_view data, Sink& sink);

  BodyFraming framing_;
  std::string leftover_;
  std::unique_ptr<char[]> buf_;
  ChunkedDecoder chunked_;
  uint64_t remaining_ = 0;
  uint64_t decoded_ = 0;
  bool done_ = false;
};

// Frames body pieces for the next hop: as-is for Content-Length and close-delimited bodies,
// one chunk per piece for chunked ones.
class BodyEncoder {
 public:
  explicit BodyEncoder(BodyFraming framing) : framing_(framing) {}
  // Appends the framed piece to `out`.
  void append(std::string* out, std::string_view piece) const;
  // Appends the end of the body ("0\r\n\r\n" for chunked).
  void finish(std::string* out) const;
  bool raw() const { return framing_.kind != BodyFraming::Kind::kChunked; }

 private:
  BodyFraming framing_;
};

template <typename Sink>
IoResult BodyReader::consume(std::string_view data, Sink& sink) {
  IoResult r;
  switch (framing_.kind) {
    case BodyFraming::Kind::kNone:
      done_ = true;
      leftover_.append(data);
      break;
    case BodyFraming::Kind::kLength: {
      size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
      if (n > 0) sink(data.substr(0, n));
      remaining_ -= n;
      decoded_ += n;
      if (remaining_ == 0) {
        done_ = true;
        leftover_.append(data.substr(n));
      }
      break;
    }
    case BodyFraming::Kind::kChunked: {
      auto res = chunked_.feed(data, [&](std::string_view piece) {
        decoded_ += piece.size();
        sink(piece);
      });
      if (res.error) {
        r.status = IoResult::Status::kError;
        r.error = "invalid chunked body: " + res.message;
        return r;
      }
      if (chunked_.done()) {
        done_ = true;
        leftover_.append(data.substr(res.consumed));
      }
      break;
    }
    case BodyFraming::Kind::kUntilClose:
      decoded_ += data.size();
      if (!data.empty()) sink(data);
      break;
  }
  return r;
}

template <typename Sink>
IoResult BodyReader::read_once(Stream& in, Deadline deadline, int watch_fd, Sink&& sink) {
  if (done_) return {};
  if (!leftover_.empty()) return consume_buffered(sink);
  if (!buf_) buf_ = std::make_unique<char[]>(kReadSize);
  IoResult r = read_some(in, buf_.get(), read_size(), deadline, watch_fd);
  if (r.status == IoResult::Status::kEof) return on_eof();
  if (!r.ok()) return r;
  return on_read(std::string_view(buf_.get(), r.bytes), sink);
}

}  // namespace lp
