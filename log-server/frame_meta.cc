#include "log-server/frame_meta.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/json_scan.h"

namespace lp::logsrv {

namespace {

using lp::JsonMember;

MetaValue* slot_for(FrameMeta* out, std::string_view k) {
  struct Entry {
    std::string_view name;
    MetaValue FrameMeta::*field;
  };
  static constexpr Entry kSlots[] = {
      {"started_at", &FrameMeta::started_at},
      {"route", &FrameMeta::route},
      {"method", &FrameMeta::method},
      {"proxy_path", &FrameMeta::proxy_path},
      {"destination", &FrameMeta::destination},
      {"client_ip", &FrameMeta::client_ip},
      {"replay_of", &FrameMeta::replay_of},
      {"t_us", &FrameMeta::t_us},
      {"outcome", &FrameMeta::outcome},
      {"status", &FrameMeta::status},
      {"error", &FrameMeta::error},
      {"request_bytes", &FrameMeta::request_bytes},
      {"response_bytes", &FrameMeta::response_bytes},
  };
  for (const Entry& e : kSlots) {
    if (k == e.name) return &(out->*e.field);
  }
  return nullptr;
}

void set(MetaValue* v, const JsonMember& m) {
  *v = MetaValue{};
  switch (m.kind) {
    case JsonMember::Kind::kString:
      v->kind = MetaValue::Kind::kString;
      v->text = m.string;
      break;
    case JsonMember::Kind::kInteger:
      v->kind = MetaValue::Kind::kInteger;
      v->integer = m.integer;
      break;
    case JsonMember::Kind::kUnsigned:
      v->kind = MetaValue::Kind::kUnsigned;
      v->unsigned_integer = m.unsigned_integer;
      break;
    case JsonMember::Kind::kFloat:
      v->kind = MetaValue::Kind::kFloat;
      v->floating = m.floating;
      break;
    default:
      v->kind = MetaValue::Kind::kOther;
  }
}

// Reads the four figures of `text` (a valid JSON object; the last value of a key counts) and
// tells whether `text` is already what nlohmann's dump of it gives: integer members only, keys
// of [a-z0-9_] in strictly increasing order, no space, no escape, no "-0". The proxy writes its
// timings that way (common/json_writer.h), so they need no parse.
bool read_timings(std::string_view text, FrameMeta* out) {
  bool canonical = true, is_object = false;
  std::string last_key;
  size_t length = 2;  // the braces
  MetaValue request_forwarded, upstream_headers, first_byte, total;
  scan_json_object(text, &is_object, [&](std::string_view key, const JsonMember& m) {
    if (key == "request_forwarded_us") set(&request_forwarded, m);
    if (key == "upstream_headers_us") set(&upstream_headers, m);
    if (key == "first_byte_us") set(&first_byte, m);
    if (key == "total_us") set(&total, m);
    if (!canonical) return;
    const bool integer =
        m.kind == JsonMember::Kind::kInteger || m.kind == JsonMember::Kind::kUnsigned;
    const bool plain_key = std::all_of(key.begin(), key.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
    if (!integer || !plain_key || m.raw == "-0" || m.raw.size() > 18 ||
        (length > 2 && key <= last_key)) {
      canonical = false;
      return;
    }
    length += (length > 2 ? 1 : 0) + key.size() + 3 + m.raw.size();  // ,"key":value
    last_key = key;
  });
  out->request_forwarded_us = request_forwarded.opt_int();
  out->upstream_headers_us = upstream_headers.opt_int();
  out->first_byte_us = first_byte.opt_int();
  out->total_us = total.opt_int();
  return canonical && is_object && length == text.size();
}

}  // namespace

std::optional<int64_t> MetaValue::opt_int() const {
  switch (kind) {
    case Kind::kUnsigned:
      return unsigned_integer > static_cast<uint64_t>(INT64_MAX)
                 ? INT64_MAX
                 : static_cast<int64_t>(unsigned_integer);
    case Kind::kInteger:
      return integer;
    case Kind::kFloat:
      return static_cast<int64_t>(floating);
    default:
      return std::nullopt;
  }
}

std::optional<FrameMeta> read_frame_meta(std::string_view meta) {
  FrameMeta out;
  std::string_view timings;  // the last "timings" value's text, when it is an object
  bool is_object = false;
  bool valid = scan_json_object(meta, &is_object, [&](std::string_view key, const JsonMember& m) {
    if (MetaValue* v = slot_for(&out, key)) {
      set(v, m);
    } else if (key == "timings") {
      out.has_timings = m.kind == JsonMember::Kind::kObject;
      timings = m.raw;
    }
  });
  if (!valid || !is_object) return std::nullopt;
  if (out.has_timings) {
    if (read_timings(timings, &out)) {
      out.timings_json = timings;
    } else {
      // Stored as JSON: parsed, so that its text is what the parsed object's dump gives
      // (sorted keys, compact), whatever the sender wrote.
      out.timings_json = nlohmann::json::parse(timings).dump(
          -1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
  }
  return out;
}

}  // namespace lp::logsrv
