// Undoing a message's Content-Encoding (gzip, x-gzip, deflate, br, zstd, and stacks of them)
// incrementally, with a hard bound on the decoded output. Pure code: bytes in, bytes out to a
// sink, no I/O. Memory stays bounded whatever the input (decompression bombs included): output
// reaches the sink in pieces of at most kDecodeChunk bytes and is never accumulated here.
//
// Failures are values: feed()/finish() return false and error() names the problem. One
// BodyDecoder decodes one body; it is not thread-safe (one thread at a time).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lp::logsrv::reading {

inline constexpr size_t kDecodeChunk = 64 * 1024;

enum class DecodeStatus {
  kOk,
  kUnknownCoding,  // a coding we do not know (422)
  kCorrupt,        // the bytes are not valid for their coding, or end mid-stream (422)
  kTooLarge,       // decoded output would pass max_output (413)
  kSinkStopped,    // the sink returned false: the caller stopped reading
};

// The codings of a Content-Encoding value ("gzip, br" -> {"gzip", "br"}), lower-cased, in the
// order listed, "identity" and empty items dropped. Several header lines are joined by the
// caller with ", " before this is called.
std::vector<std::string> parse_content_codings(std::string_view header_value);

class BodyDecoder {
 public:
  // Receives decoded bytes; returning false stops decoding (kSinkStopped).
  using Sink = std::function<bool(std::string_view)>;

  // `codings` as parse_content_codings() returns them (applied by the sender in that order,
  // so undone in reverse). No codings: the bytes pass through unchanged (still bounded).
  BodyDecoder(std::vector<std::string> codings, uint64_t max_output);
  ~BodyDecoder();
  BodyDecoder(BodyDecoder&&) noexcept;
  BodyDecoder& operator=(BodyDecoder&&) noexcept;

  // Decodes the next piece of the encoded body. False on the first problem; later calls
  // keep returning false.
  bool feed(std::string_view encoded, const Sink& sink);
  // The encoded body ended: false when a coding's stream is incomplete (kCorrupt).
  bool finish(const Sink& sink);

  DecodeStatus status() const;
  // "gzip: invalid block type", "unknown content coding \"foo\"", "decoded body exceeds
  // 268435456 bytes" ...; empty while status() is kOk.
  const std::string& error() const;
  uint64_t output_bytes() const;  // decoded bytes handed to the sink so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Convenience for bodies already in memory: the whole decoded output appended to *out.
DecodeStatus decode_all(std::string_view encoded, const std::vector<std::string>& codings,
                        uint64_t max_output, std::string* out, std::string* error);

}  // namespace lp::logsrv::reading
