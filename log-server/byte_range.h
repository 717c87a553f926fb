// The Range header of the raw-message endpoints, parsed by us rather than by cpp-httplib
// 0.11.4, which computes a negative (wrapped) length for a range starting past the end and also
// cuts JSON error bodies to the requested range. One range of bytes is served; anything a
// client cannot have meant gets 416 with a sentence naming the problem.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lp::logsrv {

struct ByteRange {
  enum class Kind {
    kWhole,     // no Range header, another unit, or several ranges (ignored, RFC 9110 14.2)
    kPart,      // serve [first, first + length) with 206
    kRejected,  // 416; `problem` says why
  } kind = Kind::kWhole;
  int64_t first = 0;
  int64_t length = 0;
  std::string problem;
};

// `header`: the Range header value ("" when absent); `size`: the bytes that exist.
ByteRange parse_byte_range(std::string_view header, int64_t size);

}  // namespace lp::logsrv
