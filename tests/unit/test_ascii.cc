#include "common/ascii.h"

#include <doctest/doctest.h>

namespace {

TEST_CASE("ascii: iequals folds A-Z only, never by locale") {
  struct Row {
    const char* a;
    const char* b;
    bool equal;
  };
  const Row rows[] = {
      {"Content-Type", "content-type", true},
      {"TRANSFER-ENCODING", "transfer-encoding", true},
      {"", "", true},
      {"gzip", "gzip ", false},
      {"x-gzip", "X-GZIP", true},
      {"a", "b", false},
      {"@", "`", false},        // 0x40 and 0x60: one bit apart, not letters
      {"[", "{", false},        // nor these
      {"\xC4", "\xE4", false},  // Latin-1 Ä / ä: a locale could fold them; HTTP must not
      {"stra\xC3\x9F"
       "e",
       "STRA\xC3\x9F"
       "E",
       true},
  };
  for (const Row& r : rows) {
    CAPTURE(r.a);
    CAPTURE(r.b);
    CHECK(lp::iequals(r.a, r.b) == r.equal);
    CHECK(lp::iequals(r.b, r.a) == r.equal);
  }
  static_assert(lp::iequals("Host", "hOST"));
}

TEST_CASE("ascii: ascii_lowered keeps every non-letter byte") {
  CHECK(lp::ascii_lowered("API.OpenAI.COM:443") == "api.openai.com:443");
  CHECK(lp::ascii_lowered("\xC4Z\x80") == "\xC4z\x80");
  CHECK(lp::ascii_lowered("") == "");
}

}  // namespace
