// The Range header of the raw-message endpoints (log-server/byte_range.h), one row per input.
#include <doctest/doctest.h>

#include <string>

#include "log-server/byte_range.h"

using namespace lp::logsrv;

TEST_CASE("Range header: served, ignored and refused") {
  using Kind = ByteRange::Kind;
  struct Case {
    const char* header;
    int64_t size;
    Kind kind;
    int64_t first, length;
    const char* says;  // part of the problem, for kRejected
  };
  const Case cases[] = {
      {"", 100, Kind::kWhole, 0, 0, ""},
      {"bytes=0-9", 100, Kind::kPart, 0, 10, ""},
      {"bytes=5-8", 100, Kind::kPart, 5, 4, ""},
      {"BYTES=5-8", 100, Kind::kPart, 5, 4, ""},
      {"bytes=90-", 100, Kind::kPart, 90, 10, ""},
      {"bytes=90-1000", 100, Kind::kPart, 90, 10, ""},  // clipped to the end
      {"bytes=99-99", 100, Kind::kPart, 99, 1, ""},
      {"bytes=-10", 100, Kind::kPart, 90, 10, ""},
      {"bytes=-1000", 100, Kind::kPart, 0, 100, ""},
      {"bytes= 5-8 ", 100, Kind::kPart, 5, 4, ""},
      {"bytes=0-0,5-6", 100, Kind::kWhole, 0, 0, ""},  // several ranges: the whole message
      {"items=0-5", 100, Kind::kWhole, 0, 0, ""},      // another unit: ignored
      {"bytes=100-", 100, Kind::kRejected, 0, 0, "starts at byte 100"},
      {"bytes=999999-", 100, Kind::kRejected, 0, 0, "the message has 100 bytes"},
      {"bytes=0-", 0, Kind::kRejected, 0, 0, "starts at byte 0"},
      {"bytes=-0", 100, Kind::kRejected, 0, 0, "empty suffix"},
      {"bytes=-5", 0, Kind::kRejected, 0, 0, "empty suffix"},
      {"bytes=8-5", 100, Kind::kRejected, 0, 0, "before the first"},
      {"bytes=abc", 100, Kind::kRejected, 0, 0, "expected bytes="},
      {"bytes=-", 100, Kind::kRejected, 0, 0, "expected bytes="},
      {"bytes=", 100, Kind::kRejected, 0, 0, "expected bytes="},
      {"bytes=1-2-3", 100, Kind::kRejected, 0, 0, "expected bytes="},
      {"bytes=+1-2", 100, Kind::kRejected, 0, 0, "expected bytes="},
      {"bytes=-1-2", 100, Kind::kRejected, 0, 0, "expected bytes="},
      {"bytes=0-18446744073709551616", 100, Kind::kRejected, 0, 0, "expected bytes="},
      {"bytes=99999999999999999999-", 100, Kind::kRejected, 0, 0, "expected bytes="},
  };
  for (const auto& c : cases) {
    CAPTURE(c.header);
    CAPTURE(c.size);
    ByteRange r = parse_byte_range(c.header, c.size);
    CHECK(r.kind == c.kind);
    if (c.kind == Kind::kPart) {
      CHECK(r.first == c.first);
      CHECK(r.length == c.length);
      CHECK(r.first + r.length <= c.size);
    }
    if (c.kind == Kind::kRejected) {
      CHECK(r.problem.find("Range header") == 0);
      CHECK(r.problem.find(c.says) != std::string::npos);
    }
  }
}
