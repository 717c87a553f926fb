// scan_json_object must accept exactly what nlohmann::json::parse accepts and report the
// top-level members as the parsed object holds them.
#include "common/json_scan.h"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

using lp::JsonMember;
using nlohmann::json;

namespace {

// The members as the parsed object would hold them (the last of duplicates), in nlohmann's
// own types, for comparison.
json members_of(const std::string& text, bool* valid, bool* is_object) {
  json out = json::object();
  *valid = lp::scan_json_object(text, is_object, [&](std::string_view key, const JsonMember& m) {
    json v;
    switch (m.kind) {
      case JsonMember::Kind::kString:
        v = std::string(m.string);
        break;
      case JsonMember::Kind::kInteger:
        v = m.integer;
        break;
      case JsonMember::Kind::kUnsigned:
        v = m.unsigned_integer;
        break;
      case JsonMember::Kind::kFloat:
        v = m.floating;
        break;
      default:
        v = json::parse(m.raw);  // objects, arrays, literals: their text is theirs
    }
    CHECK(json::parse(m.raw) == v);
    out[std::string(key)] = v;
  });
  return out;
}

}  // namespace

TEST_CASE("scan_json_object accepts and reads what nlohmann::json::parse does") {
  const std::vector<std::string> texts = {
      "{}",
      " {\"a\" : 1 , \"b\":\"x\"} ",
      R"({"id":"0123abcd-4567-4890-a123-456789abcdef","t_us":12})",
      R"({"a":1,"a":"two"})",
      R"({"n":-0,"m":0,"f":1.5,"e":-2E+3,"g":1e-2,"big":18446744073709551615})",
      R"({"over":18446744073709551616,"neg":-9223372036854775808,"under":-9223372036854775809})",
      R"({"digits":123456789012345678,"nd":-123456789012345678,"n19":1234567890123456789})",
      R"({"inf":1e309})",
      R"({"inf":-1e309})",
      R"({"long":)" + std::string(400, '9') + "}",
      R"({"s":"a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00\u0000"})",
      R"({"s":"\ud800"})",
      R"({"s":"\udc00"})",
      R"({"s":"\ud800\u0041"})",
      R"({"s":"\u12"})",
      R"({"s":"\x"})",
      "{\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"}",
      "{\"s\":\"\xc0\xaf\"}",
      "{\"s\":\"\xed\xa0\x80\"}",
      "{\"s\":\"\xf4\x90\x80\x80\"}",
      "{\"s\":\"\xe0\x80\xaf\"}",
      "{\"s\":\"\xff\"}",
      "{\"s\":\"tab\there\"}",
      "{\"s\":\"nl\nhere\"}",
      R"({"nested":{"a":[1,2,{"b":null}],"c":{}},"arr":[],"t":true,"f":false,"z":null})",
      R"({"deep":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{"x":[1]}]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})",
      R"({"a":1,})",
      R"({"a":1 "b":2})",
      R"({"a":})",
      R"({"a" 1})",
      R"({a:1})",
      R"({"a":01})",
      R"({"a":1.})",
      R"({"a":.5})",
      R"({"a":+1})",
      R"({"a":-})",
      R"({"a":1e})",
      R"({"a":tru})",
      R"({"a":truex})",
      R"({"a":[1,]})",
      R"({"a":[1 2]})",
      R"({"a":{"b":1,}})",
      R"({"a":1} x)",
      R"({"a":1}})",
      R"({"a":1} // c)",
      std::string("{\"a\":1}\0garbage", 15),
      std::string("{\"a\":1} \0", 9),
      std::string("{\"a\":\0}", 7),
      "\xef\xbb\xbf{\"a\":1}",
      "\xef\xbb{\"a\":1}",
      "\xef{\"a\":1}",
      "",
      "   ",
      "[1,2]",
      "\"text\"",
      "42",
      "null",
      "{",
      "{\"a\"",
      "{\"a\":\"unterminated}",
      "{\"\":\"empty key\",\"k\\u0065y\":\"escaped key\"}",
  };
  for (const std::string& text : texts) {
    CAPTURE(text);
    json dom = json::parse(text, nullptr, /*allow_exceptions=*/false);
    bool valid = false, is_object = false;
    json ours = members_of(text, &valid, &is_object);
    REQUIRE(valid == !dom.is_discarded());
    if (!valid) continue;
    REQUIRE(is_object == dom.is_object());
    if (is_object) CHECK(ours == dom);
  }
}
