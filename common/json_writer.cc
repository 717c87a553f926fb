#include "common/json_writer.h"

#include <array>
#include <charconv>

namespace lp {
namespace {

constexpr uint8_t kAccept = 0;
constexpr uint8_t kReject = 1;

// Björn Höhrmann's UTF-8 DFA (MIT), the same table nlohmann::json's serializer uses: the
// same bytes are accepted and rejected at the same positions, so the U+FFFD replacements
// fall where nlohmann's do.
constexpr std::array<uint8_t, 400> kUtf8d = {{
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,  // 00..1F
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,  // 20..3F
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,  // 40..5F
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,  // 60..7F
    1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,
    9,   9,   9,   9,   9,   9,   9,   9,   9,   9,   9,   9,   9,   9,   9,   9,  // 80..9F
    7,   7,   7,   7,   7,   7,   7,   7,   7,   7,   7,   7,   7,   7,   7,   7,
    7,   7,   7,   7,   7,   7,   7,   7,   7,   7,   7,   7,   7,   7,   7,   7,  // A0..BF
    8,   8,   2,   2,   2,   2,   2,   2,   2,   2,   2,   2,   2,   2,   2,   2,
    2,   2,   2,   2,   2,   2,   2,   2,   2,   2,   2,   2,   2,   2,   2,   2,    // C0..DF
    0xA, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x3, 0x4, 0x3, 0x3,  // E0..EF
    0xB, 0x6, 0x6, 0x6, 0x5, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8, 0x8,  // F0..FF
    0x0, 0x1, 0x2, 0x3, 0x5, 0x8, 0x7, 0x1, 0x1, 0x1, 0x4, 0x6, 0x1, 0x1, 0x1, 0x1,  // s0..s0
    1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,
    1,   0,   1,   1,   1,   1,   1,   0,   1,   0,   1,   1,   1,   1,   1,   1,  // s1..s2
    1,   2,   1,   1,   1,   1,   1,   2,   1,   2,   1,   1,   1,   1,   1,   1,
    1,   1,   1,   1,   1,   1,   1,   2,   1,   1,   1,   1,   1,   1,   1,   1,  // s3..s4
    1,   2,   1,   1,   1,   1,   1,   1,   1,   2,   1,   1,   1,   1,   1,   1,
    1,   1,   1,   1,   1,   1,   1,   3,   1,   3,   1,   1,   1,   1,   1,   1,  // s5..s6
    1,   3,   1,   1,   1,   1,   1,   3,   1,   3,   1,   1,   1,   1,   1,   1,
    1,   3,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1,   1  // s7..s8
}};

// Only the state matters here: a code point is copied byte by byte, never re-encoded.
uint8_t next_state(uint8_t state, uint8_t byte) {
  return kUtf8d[256u + static_cast<size_t>(state) * 16u + kUtf8d[byte]];
}

// Printable ASCII other than '"' and '\\': copied as is.
inline bool is_plain(char c) {
  const auto b = static_cast<uint8_t>(c);
  return b >= 0x20 && b < 0x80 && b != '"' && b != '\\';
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

void append_escaped_control(std::string* out, uint8_t c) {
  switch (c) {
    case '\b':
      out->append("\\b");
      return;
    case '\t':
      out->append("\\t");
      return;
    case '\n':
      out->append("\\n");
      return;
    case '\f':
      out->append("\\f");
      return;
    case '\r':
      out->append("\\r");
      return;
    default: {
      static constexpr char kHex[] = "0123456789abcdef";  // nlohmann: "\\u%04x", lowercase
      char buf[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out->append(buf, sizeof buf);
    }
  }
}

template <class T>
void append_integer(std::string* out, T value) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

}  // namespace

void append_json_string(std::string* out, std::string_view s) {
  out->reserve(out->size() + s.size() + 2);
  out->push_back('"');
  uint8_t state = kAccept;
  size_t after_last_accept = out->size();  // where an incomplete sequence began in *out
  size_t pending = 0;                      // bytes of that incomplete sequence
  for (size_t i = 0; i < s.size(); ++i) {
    if (state == kAccept && is_plain(s[i])) {
      // The common case: a run of ASCII that needs no escaping, copied at once.
      size_t end = i + 1;
      while (end < s.size() && is_plain(s[end])) ++end;
      out->append(s.data() + i, end - i);
      after_last_accept = out->size();
      i = end - 1;
      continue;
    }
    const auto byte = static_cast<uint8_t>(s[i]);
    state = next_state(state, byte);
    if (state == kAccept) {
      if (byte == '"' || byte == '\\') {
        out->push_back('\\');
        out->push_back(static_cast<char>(byte));
      } else if (byte < 0x20) {
        append_escaped_control(out, byte);
      } else {
        out->push_back(static_cast<char>(byte));  // the last byte of a code point
      }
      after_last_accept = out->size();
      pending = 0;
    } else if (state == kReject) {
      // Drop the incomplete sequence and write U+FFFD; a byte that broke a sequence may start
      // a valid one, so it is read again (nlohmann's rule).
      if (pending > 0) --i;
      out->resize(after_last_accept);
      out->append(kReplacement);
      after_last_accept = out->size();
      pending = 0;
      state = kAccept;
    } else {
      out->push_back(static_cast<char>(byte));
      ++pending;
    }
  }
  if (state != kAccept) {  // the string ended inside a sequence
    out->resize(after_last_accept);
    out->append(kReplacement);
  }
  out->push_back('"');
}

void JsonObjectWriter::field(std::string_view key, int64_t value) {
  key_(key);
  append_integer(out_, value);
}

void JsonObjectWriter::field(std::string_view key, uint64_t value) {
  key_(key);
  append_integer(out_, value);
}

}  // namespace lp
