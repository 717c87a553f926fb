#include "log-server/cursor.h"

#include <charconv>

namespace lp::logsrv {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr size_t kMaxCursorChars = 128;

int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

std::string base64url(std::string_view in) {
  std::string out;
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  size_t rest = in.size() - i;
  if (rest > 0) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (rest == 2) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    if (rest == 2) out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::optional<std::string> unbase64url(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int s = sextet(c);
    if (s < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(s);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Leftover bits must be zero, so that every cursor has exactly one spelling.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string encode_cursor(const Cursor& cursor) {
  return base64url(std::to_string(cursor.started_us) + "." + cursor.id);
}

std::optional<Cursor> decode_cursor(std::string_view text) {
  if (text.empty() || text.size() > kMaxCursorChars) return std::nullopt;
  auto raw = unbase64url(text);
  if (!raw) return std::nullopt;
  size_t dot = raw->find('.');
  if (dot == std::string::npos || dot == 0) return std::nullopt;
  Cursor c;
  const char* begin = raw->data();
  const char* end = raw->data() + dot;
  auto [ptr, ec] = std::from_chars(begin, end, c.started_us);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  c.id = raw->substr(dot + 1);
  if (c.id.empty() || c.id.size() > 36) return std::nullopt;
  for (char ch : c.id) {
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || ch == '-')) return std::nullopt;
  }
  // One spelling per cursor: "007.x" or "-0.x" decode to a cursor that encodes differently,
  // so they are edits, not cursors this server handed out.
  if (encode_cursor(c) != text) return std::nullopt;
  return c;
}

}  // namespace lp::logsrv
