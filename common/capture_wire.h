// The capture wire format: how the proxy ships what crossed it to the log server, and how
// the spool stores unsent batches. Binary-safe without base64, versioned, self-delimiting.
//
//   batch  := magic "LPCB" | version u8 (=1) | frame*            (POST /ingest body)
//   frame  := type u8 | meta_len u32 | data_len u32 | meta | data  (big-endian lengths)
//   meta   := one JSON object (UTF-8), at most kMaxMetaBytes
//   data   := raw bytes (an HTTP head or body piece), at most kMaxDataBytes
//
// The first frame of a batch is kBatch ({"proxy_id","seq"}): a log server applies each
// (proxy_id, seq) once, so a re-sent batch is harmless. An exchange's frames may span
// batches, always in order: kBegin, kRequestHead, kRequestBody*, kResponseHead,
// kResponseBody*, kEnd. Decoding is pure; any malformed input is rejected with a sentence
// naming the problem and the byte offset, never by crashing or over-reading.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace lp::wire {

inline constexpr std::string_view kMagic = "LPCB";
inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kMaxMetaBytes = 64 * 1024;
inline constexpr size_t kMaxDataBytes = 16 * 1024 * 1024;
inline constexpr size_t kMaxBatchBytes = 64 * 1024 * 1024;

// Ordered ingest, so that a proxy can keep several batches in flight (one per connection): a
// batch POSTed with "kAfterHeader: SEQ" is applied only once batch SEQ of the same proxy_id is,
// and the log server waits for that (bounded, then 409 and nothing applied). A log server that
// honours it says so with "kOrderedHeader: 1" on its /ingest answers; until a proxy has seen
// that it keeps one batch in flight, so an older log server never applies batches out of order.
inline constexpr std::string_view kAfterHeader = "X-Capture-After";
inline constexpr std::string_view kOrderedHeader = "X-Capture-Ordered";

enum class FrameType : uint8_t {
  kBatch = 1,         // meta: {"proxy_id": str, "seq": uint}
  kBegin = 2,         // meta: {"id", "route", "method", "proxy_path", "destination",
                      //        "client_ip", "started_at" (RFC 3339, µs), "replay_of"?}
  kRequestHead = 3,   // meta: {"id"}; data: request head as forwarded, redacted, with
                      //        X-Proxy-Path (start line, headers, blank line)
  kRequestBody = 4,   // meta: {"id"}; data: body bytes (de-chunked)
  kResponseHead = 5,  // meta: {"id", "t_us"}; data: response head as received, redacted
  kResponseBody = 6,  // meta: {"id", "t_us"}; data: body bytes as received (de-chunked);
                      //        t_us: arrival, µs since the exchange started
  kEnd = 7,           // meta: {"id", "outcome", "status", "error"?, "request_bytes",
                      //        "response_bytes", "timings": {"request_forwarded_us",
                      //        "upstream_headers_us", "first_byte_us", "total_us"}}
};

struct Frame {
  FrameType type;
  nlohmann::json meta;  // always an object
  std::string data;
};

// Appends one encoded frame to `out`. `meta` must be an object; sizes are checked by the
// caller (encoding never fails, decoding enforces the limits).
void append_frame(std::string* out, FrameType type, const nlohmann::json& meta,
                  std::string_view data);
// The same without a DOM, for the proxy's hot path: start_frame() appends the frame header
// with the lengths left open and returns where the frame starts; the caller then appends the
// meta object to `out` (common/json_writer.h); finish_frame() fills in both lengths and appends
// the data. The bytes are those append_frame would write for the same meta.
size_t start_frame(std::string* out, FrameType type);
void finish_frame(std::string* out, size_t frame_start, std::string_view data);
// Or, to write the data in place as well: finish_meta() after the meta returns where the data
// starts; append the data; then finish_data().
size_t finish_meta(std::string* out, size_t frame_start);
void finish_data(std::string* out, size_t frame_start, size_t data_start);
// The batch preamble: magic, version, and the kBatch frame.
void begin_batch(std::string* out, const std::string& proxy_id, uint64_t seq);

// A frame decoded without a copy: views into the batch bytes, which must outlive it.
struct FrameView {
  FrameType type;
  std::array<char, 36> id_chars;  // the meta's "id", unescaped: a lowercase UUID
  std::string_view meta;          // the meta JSON as sent (a valid JSON object)
  std::string_view data;
  std::string_view id() const { return {id_chars.data(), id_chars.size()}; }
};

struct DecodedBatch {
  std::string proxy_id;
  uint64_t seq = 0;
  std::vector<Frame> frames;     // excluding the kBatch frame (decode_batch)
  std::vector<FrameView> views;  // the same, as views (decode_batch_views)
};

// Decodes a whole batch. Returns nullopt with *error set (e.g. "frame 3 at byte 1234: data
// length 99999999 exceeds 16777216") on: bad magic, unsupported version, truncated frame,
// oversize meta/data/batch, unknown frame type, meta that is not a JSON object, a first
// frame that is not kBatch or lacks proxy_id/seq, and frames other than kBatch lacking "id".
std::optional<DecodedBatch> decode_batch(std::string_view bytes, std::string* error);
// The same checks and messages, for the log server's hot path: each frame's meta is validated
// without building a JSON object and its data is not copied; fills `views` (pointing into
// `bytes`), leaves `frames` empty.
std::optional<DecodedBatch> decode_batch_views(std::string_view bytes, std::string* error);

std::string_view frame_type_name(FrameType type);

// An exchange id as lp::new_uuid() makes it: 8-4-4-4-12 lowercase hex. Safe in a file name.
bool is_exchange_id(std::string_view s);

}  // namespace lp::wire
