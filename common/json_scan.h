// Reading the top level of a small JSON object without building it: the log server reads a
// few keys of every capture frame's meta (common/capture_wire.h) and must accept exactly what
// nlohmann::json::parse accepts (strict RFC 8259: UTF-8 checked, surrogate pairs paired, no
// comments, a leading UTF-8 byte order mark skipped, a number too large for a double refused),
// since a batch that one decoder takes and the other refuses would be a silent change of the
// wire format. tests/unit/test_json_scan.cc and fuzz/fuzz_wire.cc compare the two.
//
// No allocation unless a string holds escapes, nesting is deeper than 15 levels, or a number
// needs strtod; the members are visited in document order (duplicates included: a caller that
// wants what a parsed object would hold keeps the last).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace lp {

struct JsonMember {
  enum class Kind { kString, kInteger, kUnsigned, kFloat, kObject, kArray, kOther };
  Kind kind = Kind::kOther;       // kOther: true, false, null
  std::string_view string;        // kString: the value, unescaped (valid until the next member)
  int64_t integer = 0;            // kInteger: a negative integer
  uint64_t unsigned_integer = 0;  // kUnsigned: a non-negative integer
  double floating = 0;            // kFloat: with a fraction or exponent, or beyond 64 bits
  std::string_view raw;           // the value's JSON text as written (objects and arrays too)
};

// Visits each member of `text` when it is one JSON object. Returns false when `text` is not
// valid JSON (members visited before the error was found are then to be ignored); *is_object
// tells a valid text whose top level is something else (nothing visited). `key` is unescaped
// and, like the member's string, valid during the call only.
bool scan_json_object(std::string_view text, bool* is_object,
                      const std::function<void(std::string_view key, const JsonMember&)>& visit);

}  // namespace lp
