// The keys of a capture frame's meta that ingest reads (common/capture_wire.h lists them per
// frame type), taken from the meta JSON in one pass without building a JSON object: a batch of
// 1 KiB exchanges has six frames per exchange, and a DOM per frame was a tenth of ingest's CPU.
// A key keeps the last value it was given (as a parsed object would); a key whose value has the
// wrong type reads as absent, exactly as ingest read the parsed object before.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lp::logsrv {

// One top-level value: a string, a number, or anything else (kOther: null, bool, array, object).
struct MetaValue {
  enum class Kind { kAbsent, kString, kInteger, kUnsigned, kFloat, kOther };
  Kind kind = Kind::kAbsent;
  std::string text;
  int64_t integer = 0;
  uint64_t unsigned_integer = 0;
  double floating = 0;

  // The string, or "" for anything else.
  std::string str() const { return kind == Kind::kString ? text : std::string(); }
  std::string take_str() { return kind == Kind::kString ? std::move(text) : std::string(); }
  std::optional<std::string> opt_str() const {
    if (kind != Kind::kString) return std::nullopt;
    return text;
  }
  // Integers as they are (unsigned ones above INT64_MAX as INT64_MAX), floats truncated.
  std::optional<int64_t> opt_int() const;
};

struct FrameMeta {
  // kBegin
  MetaValue started_at, route, method, proxy_path, destination, client_ip, replay_of;
  // kResponseBody
  MetaValue t_us;
  // kEnd
  MetaValue outcome, status, error, request_bytes, response_bytes;
  // kEnd: "timings", when it is an object: its four figures and the whole object as compact
  // JSON with sorted keys (what nlohmann's dump of the parsed object gives).
  bool has_timings = false;
  std::optional<int64_t> request_forwarded_us, upstream_headers_us, first_byte_us, total_us;
  std::string timings_json;
};

// Reads `meta`, one JSON object (capture_wire's decoder has checked it). nullopt if it is not.
std::optional<FrameMeta> read_frame_meta(std::string_view meta);

}  // namespace lp::logsrv
