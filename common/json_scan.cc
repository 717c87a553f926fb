#include "common/json_scan.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace lp {

namespace {

class Scanner {
 public:
  explicit Scanner(std::string_view text) : s_(text) {}

  bool skip_bom() {
    if (s_.empty() || static_cast<unsigned char>(s_[0]) != 0xEF) return true;
    if (s_.size() < 3 || static_cast<unsigned char>(s_[1]) != 0xBB ||
        static_cast<unsigned char>(s_[2]) != 0xBF) {
      return false;
    }
    p_ = 3;
    return true;
  }

  void ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r'))
      ++p_;
  }
  // nlohmann's lexer takes a NUL byte where a token would start for the end of the input.
  bool at_end() const { return p_ == s_.size() || s_[p_] == '\0'; }
  char peek() const { return p_ < s_.size() ? s_[p_] : '\0'; }
  bool eat(char c) {
    if (p_ < s_.size() && s_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  size_t pos() const { return p_; }
  std::string_view span(size_t from) const { return s_.substr(from, p_ - from); }

  // A string starting at '"'; its unescaped value in *out (a view into the text, or into
  // `scratch` when it holds escapes).
  bool string(std::string_view* out, std::string* scratch) {
    if (!eat('"')) return false;
    const size_t start = p_;
    bool escaped = false;
    while (true) {
      if (p_ >= s_.size()) return false;
      const auto c = static_cast<unsigned char>(s_[p_]);
      if (c == '"') break;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (!escaped) scratch->assign(s_.data() + start, p_ - start);
        escaped = true;
        ++p_;
        if (!escape(scratch)) return false;
        continue;
      }
      const size_t from = p_;
      if (!utf8()) return false;
      if (escaped) scratch->append(s_.data() + from, p_ - from);
    }
    *out = escaped ? std::string_view(*scratch) : s_.substr(start, p_ - start);
    ++p_;  // the closing quote
    return true;
  }

  // A number; *member gets its kind and value.
  bool number(JsonMember* member) {
    const size_t start = p_;
    bool negative = eat('-');
    if (eat('0')) {
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++p_;
    } else {
      return false;
    }
    bool is_float = false;
    if (eat('.')) {
      is_float = true;
      if (!digits()) return false;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++p_;
      is_float = true;
      if (!eat('+')) eat('-');
      if (!digits()) return false;
    }
    std::string_view token = span(start);
    // Up to 18 digits fits either integer type: the common case needs no library call.
    if (!is_float && token.size() - (negative ? 1 : 0) <= 18) {
      uint64_t v = 0;
      for (char c : token.substr(negative ? 1 : 0)) v = v * 10 + static_cast<uint64_t>(c - '0');
      if (negative) {
        member->kind = JsonMember::Kind::kInteger;
        member->integer = -static_cast<int64_t>(v);
      } else {
        member->kind = JsonMember::Kind::kUnsigned;
        member->unsigned_integer = v;
      }
      return true;
    }
    // As nlohmann's lexer: strtoll/strtoull, then strtod when out of range; a result that is
    // not finite is a parse error.
    std::string copy(token);
    if (!is_float) {
      errno = 0;
      if (negative) {
        long long v = std::strtoll(copy.c_str(), nullptr, 10);
        if (errno == 0) {
          member->kind = JsonMember::Kind::kInteger;
          member->integer = v;
          return true;
        }
      } else {
        unsigned long long v = std::strtoull(copy.c_str(), nullptr, 10);
        if (errno == 0) {
          member->kind = JsonMember::Kind::kUnsigned;
          member->unsigned_integer = v;
          return true;
        }
      }
    }
    double d = std::strtod(copy.c_str(), nullptr);
    if (!std::isfinite(d)) return false;
    member->kind = JsonMember::Kind::kFloat;
    member->floating = d;
    return true;
  }

  bool literal(std::string_view word) {
    if (s_.substr(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

 private:
  bool digits() {
    if (!(peek() >= '0' && peek() <= '9')) return false;
    while (peek() >= '0' && peek() <= '9') ++p_;
    return true;
  }

  bool hex4(uint32_t* v) {
    if (s_.size() - p_ < 4) return false;
    uint32_t r = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[p_++];
      r <<= 4;
      if (c >= '0' && c <= '9') {
        r |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        r |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        r |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    *v = r;
    return true;
  }

  // After a backslash.
  bool escape(std::string* out) {
    if (p_ >= s_.size()) return false;
    char c = s_[p_++];
    switch (c) {
      case '"':
      case '\\':
      case '/':
        out->push_back(c);
        return true;
      case 'b':
        out->push_back('\b');
        return true;
      case 'f':
        out->push_back('\f');
        return true;
      case 'n':
        out->push_back('\n');
        return true;
      case 'r':
        out->push_back('\r');
        return true;
      case 't':
        out->push_back('\t');
        return true;
      case 'u':
        break;
      default:
        return false;
    }
    uint32_t cp = 0;
    if (!hex4(&cp)) return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // a low surrogate first
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      uint32_t low = 0;
      if (!literal("\\u") || !hex4(&low) || low < 0xDC00 || low > 0xDFFF) return false;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    return true;
  }

  bool continuation(unsigned char lo, unsigned char hi) {
    if (p_ >= s_.size()) return false;
    auto c = static_cast<unsigned char>(s_[p_]);
    if (c < lo || c > hi) return false;
    ++p_;
    return true;
  }

  // One UTF-8 sequence of a string (RFC 3629, as nlohmann's lexer checks it).
  bool utf8() {
    const auto c = static_cast<unsigned char>(s_[p_++]);
    if (c < 0x80) return true;
    if (c >= 0xC2 && c <= 0xDF) return continuation(0x80, 0xBF);
    if (c == 0xE0) return continuation(0xA0, 0xBF) && continuation(0x80, 0xBF);
    if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      return continuation(0x80, 0xBF) && continuation(0x80, 0xBF);
    }
    if (c == 0xED) return continuation(0x80, 0x9F) && continuation(0x80, 0xBF);
    if (c == 0xF0) {
      return continuation(0x90, 0xBF) && continuation(0x80, 0xBF) && continuation(0x80, 0xBF);
    }
    if (c >= 0xF1 && c <= 0xF3) {
      return continuation(0x80, 0xBF) && continuation(0x80, 0xBF) && continuation(0x80, 0xBF);
    }
    if (c == 0xF4) {
      return continuation(0x80, 0x8F) && continuation(0x80, 0xBF) && continuation(0x80, 0xBF);
    }
    return false;
  }

  std::string_view s_;
  size_t p_ = 0;
};

// One value at the scanner's position (after whitespace), nested ones included, iteratively:
// a meta may nest deeply within its 64 KiB. *member describes it.
bool value(Scanner& sc, JsonMember* member, std::string* scratch) {
  std::string open;  // '{' or '[' per level inside this value
  const size_t start = sc.pos();
  bool expect_value = true;
  while (true) {
    sc.ws();
    if (expect_value) {
      char c = sc.peek();
      JsonMember inner;
      std::string_view ignored;
      if (c == '{' || c == '[') {
        sc.eat(c);
        if (open.empty()) {
          member->kind = c == '{' ? JsonMember::Kind::kObject : JsonMember::Kind::kArray;
        }
        open.push_back(c);
        sc.ws();
        if (c == '{') {
          if (sc.eat('}')) {
            open.pop_back();
            expect_value = false;
          } else {
            if (!sc.string(&ignored, scratch)) return false;
            sc.ws();
            if (!sc.eat(':')) return false;
          }
        } else if (sc.eat(']')) {
          open.pop_back();
          expect_value = false;
        }
        if (open.empty()) break;
        continue;
      }
      JsonMember* target = open.empty() ? member : &inner;
      if (c == '"') {
        std::string_view text;
        if (!sc.string(&text, scratch)) return false;
        target->kind = JsonMember::Kind::kString;
        target->string = text;
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        if (!sc.number(target)) return false;
      } else if (sc.literal("true") || sc.literal("false") || sc.literal("null")) {
        target->kind = JsonMember::Kind::kOther;
      } else {
        return false;
      }
      expect_value = false;
      if (open.empty()) break;
      continue;
    }
    // After a value inside a container: ',' and the next, or the container's end.
    const char container = open.back();
    if (sc.eat(',')) {
      sc.ws();
      if (container == '{') {
        std::string_view ignored;
        if (!sc.string(&ignored, scratch)) return false;
        sc.ws();
        if (!sc.eat(':')) return false;
      }
      expect_value = true;
      continue;
    }
    if (!sc.eat(container == '{' ? '}' : ']')) return false;
    open.pop_back();
    if (open.empty()) break;
  }
  member->raw = sc.span(start);
  return true;
}

}  // namespace

bool scan_json_object(std::string_view text, bool* is_object,
                      const std::function<void(std::string_view key, const JsonMember&)>& visit) {
  *is_object = false;
  Scanner sc(text);
  if (!sc.skip_bom()) return false;
  sc.ws();
  std::string key_scratch, value_scratch;
  if (!sc.eat('{')) {
    // Not an object: valid or not, nothing is visited.
    JsonMember ignored;
    if (!value(sc, &ignored, &value_scratch)) return false;
    sc.ws();
    return sc.at_end();
  }
  sc.ws();
  if (!sc.eat('}')) {
    while (true) {
      sc.ws();
      std::string_view key;
      if (!sc.string(&key, &key_scratch)) return false;
      sc.ws();
      if (!sc.eat(':')) return false;
      sc.ws();
      JsonMember member;
      if (!value(sc, &member, &value_scratch)) return false;
      visit(key, member);
      sc.ws();
      if (sc.eat(',')) continue;
      if (sc.eat('}')) break;
      return false;
    }
  }
  sc.ws();
  if (!sc.at_end()) return false;
  *is_object = true;
  return true;
}

}  // namespace lp
