#include "common/capture_wire.h"

#include <cstring>

#include "common/json_scan.h"
#include "common/json_writer.h"

namespace lp::wire {

namespace {

// type u8 | meta_len u32 | data_len u32
constexpr size_t kFrameHeaderBytes = 1 + 4 + 4;
constexpr size_t kPreambleBytes = 4 + 1;  // magic, version
constexpr size_t kMaxProxyIdChars = 128;
constexpr size_t kIdChars = 36;

void put_u32(std::string* out, uint32_t v) {
  char b[4] = {static_cast<char>((v >> 24) & 0xff), static_cast<char>((v >> 16) & 0xff),
               static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
  out->append(b, sizeof b);
}

void set_u32(std::string* out, size_t at, uint32_t v) {
  (*out)[at] = static_cast<char>((v >> 24) & 0xff);
  (*out)[at + 1] = static_cast<char>((v >> 16) & 0xff);
  (*out)[at + 2] = static_cast<char>((v >> 8) & 0xff);
  (*out)[at + 3] = static_cast<char>(v & 0xff);
}

uint32_t get_u32(const unsigned char* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

bool known_type(uint8_t t) {
  return t >= static_cast<uint8_t>(FrameType::kBatch) && t <= static_cast<uint8_t>(FrameType::kEnd);
}

bool fail(std::string* error, std::string message) {
  if (error) *error = std::move(message);
  return false;
}

std::string where(size_t index, size_t offset) {
  return "frame " + std::to_string(index) + " at byte " + std::to_string(offset) + ": ";
}

}  // namespace

void append_frame(std::string* out, FrameType type, const nlohmann::json& meta,
                  std::string_view data) {
  // Invalid UTF-8 in a string is replaced with U+FFFD rather than throwing: a capture must
  // never take down the proxy because a client sent odd bytes in a header.
  std::string m = meta.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out->reserve(out->size() + kFrameHeaderBytes + m.size() + data.size());
  size_t start = start_frame(out, type);
  out->append(m);
  finish_frame(out, start, data);
}

size_t start_frame(std::string* out, FrameType type) {
  size_t start = out->size();
  out->push_back(static_cast<char>(type));
  put_u32(out, 0);  // meta_len, data_len: finish_frame knows them
  put_u32(out, 0);
  return start;
}

size_t finish_meta(std::string* out, size_t frame_start) {
  size_t meta_len = out->size() - frame_start - kFrameHeaderBytes;
  set_u32(out, frame_start + 1, static_cast<uint32_t>(meta_len));
  return out->size();
}

void finish_data(std::string* out, size_t frame_start, size_t data_start) {
  set_u32(out, frame_start + 5, static_cast<uint32_t>(out->size() - data_start));
}

void finish_frame(std::string* out, size_t frame_start, std::string_view data) {
  size_t data_start = finish_meta(out, frame_start);
  out->append(data.data(), data.size());
  finish_data(out, frame_start, data_start);
}

void begin_batch(std::string* out, const std::string& proxy_id, uint64_t seq) {
  out->append(kMagic.data(), kMagic.size());
  out->push_back(static_cast<char>(kVersion));
  size_t start = start_frame(out, FrameType::kBatch);
  JsonObjectWriter meta(out);  // keys in nlohmann's (sorted) order
  meta.field("proxy_id", proxy_id);
  meta.field("seq", seq);
  meta.close();
  finish_frame(out, start, {});
}

namespace {

template <bool kViews>
std::optional<DecodedBatch> decode_impl(std::string_view bytes, std::string* error) {
  auto bad = [&](std::string message) -> std::optional<DecodedBatch> {
    fail(error, std::move(message));
    return std::nullopt;
  };
  if (bytes.size() > kMaxBatchBytes) {
    return bad("batch of " + std::to_string(bytes.size()) + " bytes exceeds " +
               std::to_string(kMaxBatchBytes));
  }
  // A prefix of the magic is reported as truncated, anything else as bad magic.
  size_t magic_seen = bytes.size() < kMagic.size() ? bytes.size() : kMagic.size();
  if (magic_seen > 0 && std::memcmp(bytes.data(), kMagic.data(), magic_seen) != 0) {
    return bad("bad magic at byte 0 (not a capture batch)");
  }
  if (bytes.size() < kPreambleBytes) {
    return bad("batch truncated at byte " + std::to_string(bytes.size()) + ": preamble needs " +
               std::to_string(kPreambleBytes) + " bytes");
  }
  uint8_t version = static_cast<uint8_t>(bytes[4]);
  if (version != kVersion) {
    return bad("unsupported version " + std::to_string(version) + " at byte 4 (expected " +
               std::to_string(kVersion) + ")");
  }
  if (bytes.size() == kPreambleBytes) {
    return bad("batch truncated at byte 5: missing the batch frame");
  }

  const auto* base = reinterpret_cast<const unsigned char*>(bytes.data());
  DecodedBatch out;
  size_t offset = kPreambleBytes;
  for (size_t index = 0; offset < bytes.size(); ++index) {
    size_t left = bytes.size() - offset;
    if (left < kFrameHeaderBytes) {
      return bad(where(index, offset) + "truncated frame header (" + std::to_string(left) +
                 " bytes left, a header needs " + std::to_string(kFrameHeaderBytes) + ")");
    }
    const unsigned char* p = base + offset;
    uint8_t type = p[0];
    uint32_t meta_len = get_u32(p + 1);
    uint32_t data_len = get_u32(p + 5);
    if (!known_type(type)) {
      return bad(where(index, offset) + "unknown frame type " + std::to_string(type));
    }
    if (meta_len > kMaxMetaBytes) {
      return bad(where(index, offset) + "meta length " + std::to_string(meta_len) + " exceeds " +
                 std::to_string(kMaxMetaBytes));
    }
    if (data_len > kMaxDataBytes) {
      return bad(where(index, offset) + "data length " + std::to_string(data_len) + " exceeds " +
                 std::to_string(kMaxDataBytes));
    }
    // Both lengths are bounded above, so this sum cannot overflow.
    uint64_t body = static_cast<uint64_t>(meta_len) + data_len;
    if (body > left - kFrameHeaderBytes) {
      return bad(where(index, offset) + "truncated frame (needs " +
                 std::to_string(kFrameHeaderBytes + body) + " bytes, " + std::to_string(left) +
                 " left)");
    }
    const char* meta_begin = bytes.data() + offset + kFrameHeaderBytes;
    FrameType ft = static_cast<FrameType>(type);
    if (kViews && index > 0) {
      // The last "id" counts, as in the parsed object.
      bool is_object = false, id_is_string = false, id_ok = false;
      std::array<char, kIdChars> id{};
      bool valid = scan_json_object(std::string_view(meta_begin, meta_len), &is_object,
                                    [&](std::string_view key, const JsonMember& m) {
                                      if (key != "id") return;
                                      id_is_string = m.kind == JsonMember::Kind::kString;
                                      id_ok = id_is_string && is_exchange_id(m.string);
                                      if (id_ok) std::memcpy(id.data(), m.string.data(), kIdChars);
                                    });
      if (!valid) return bad(where(index, offset) + "meta is not valid JSON");
      if (!is_object) return bad(where(index, offset) + "meta is not a JSON object");
      if (ft == FrameType::kBatch) {
        return bad(where(index, offset) +
                   "unexpected batch frame (only the first frame may be one)");
      }
      if (!id_is_string) return bad(where(index, offset) + "meta lacks a string id");
      if (!id_ok) return bad(where(index, offset) + "id is not a lowercase UUID (36 characters)");
      FrameView& v = out.views.emplace_back();
      v.type = ft;
      v.id_chars = id;
      v.meta = std::string_view(meta_begin, meta_len);
      v.data = std::string_view(meta_begin + meta_len, data_len);
      offset += kFrameHeaderBytes + body;
      continue;
    }
    nlohmann::json meta = nlohmann::json::parse(meta_begin, meta_begin + meta_len, nullptr,
                                                /*allow_exceptions=*/false);
    if (meta.is_discarded()) return bad(where(index, offset) + "meta is not valid JSON");
    if (!meta.is_object()) return bad(where(index, offset) + "meta is not a JSON object");

    if (index == 0) {
      if (ft != FrameType::kBatch) {
        return bad(where(index, offset) + "first frame is " + std::string(frame_type_name(ft)) +
                   ", expected batch");
      }
      auto pid = meta.find("proxy_id");
      if (pid == meta.end() || !pid->is_string()) {
        return bad(where(index, offset) + "batch frame lacks a string proxy_id");
      }
      const auto& pid_str = pid->get_ref<const std::string&>();
      if (pid_str.empty() || pid_str.size() > kMaxProxyIdChars) {
        return bad(where(index, offset) + "proxy_id must be 1.." +
                   std::to_string(kMaxProxyIdChars) + " characters, got " +
                   std::to_string(pid_str.size()));
      }
      auto seq = meta.find("seq");
      if (seq == meta.end() || !seq->is_number_unsigned()) {
        return bad(where(index, offset) + "batch frame lacks an unsigned integer seq");
      }
      out.proxy_id = pid_str;
      out.seq = seq->get<uint64_t>();
    } else {
      if (ft == FrameType::kBatch) {
        return bad(where(index, offset) +
                   "unexpected batch frame (only the first frame may be one)");
      }
      auto id = meta.find("id");
      if (id == meta.end() || !id->is_string()) {
        return bad(where(index, offset) + "meta lacks a string id");
      }
      if (!is_exchange_id(id->get_ref<const std::string&>())) {
        return bad(where(index, offset) + "id is not a lowercase UUID (36 characters)");
      }
      Frame frame{ft, std::move(meta),
                  std::string(meta_begin + meta_len, meta_begin + meta_len + data_len)};
      out.frames.push_back(std::move(frame));
    }
    offset += kFrameHeaderBytes + body;
  }
  return out;
}

}  // namespace

std::optional<DecodedBatch> decode_batch(std::string_view bytes, std::string* error) {
  return decode_impl<false>(bytes, error);
}

std::optional<DecodedBatch> decode_batch_views(std::string_view bytes, std::string* error) {
  return decode_impl<true>(bytes, error);
}

std::string_view frame_type_name(FrameType type) {
  switch (type) {
    case FrameType::kBatch:
      return "batch";
    case FrameType::kBegin:
      return "begin";
    case FrameType::kRequestHead:
      return "request_head";
    case FrameType::kRequestBody:
      return "request_body";
    case FrameType::kResponseHead:
      return "response_head";
    case FrameType::kResponseBody:
      return "response_body";
    case FrameType::kEnd:
      return "end";
  }
  return "unknown";
}

bool is_exchange_id(std::string_view s) {
  if (s.size() != kIdChars) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace lp::wire
