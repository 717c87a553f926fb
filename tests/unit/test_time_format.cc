// Time text shared by the proxy (capture begin frames) and the log server (index, API, file
// names): parsing and formatting against tables and against libc's own rendering.
#include <doctest/doctest.h>

#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>

#include "common/time_format.h"

using namespace lp;

namespace {

constexpr int64_t kSep13 = 1757729469LL * 1000000;  // 2025-09-13T02:11:09Z

}  // namespace

TEST_CASE("RFC 3339 parsing: accepted forms") {
  struct Case {
    const char* text;
    int64_t us;
  };
  const Case cases[] = {
      {"2025-09-13T02:11:09Z", kSep13},
      {"2025-09-13t02:11:09z", kSep13},
      {"2025-09-13 02:11:09Z", kSep13},
      {"2025-09-13T02:11:09.5Z", kSep13 + 500000},
      {"2025-09-13T02:11:09.123456Z", kSep13 + 123456},
      {"2025-09-13T02:11:09.123456789Z", kSep13 + 123456},  // truncated to µs
      {"2025-09-13T04:11:09+02:00", kSep13},
      {"2025-09-12T21:41:09.000001-04:30", kSep13 + 1},
      {"2025-09-13T02:11:09+00:00", kSep13},
      {"1970-01-01T00:00:00Z", 0},
      {"1969-12-31T23:59:59.999999Z", -1},
      {"2024-02-29T00:00:00Z", 1709164800LL * 1000000},
      {"2016-12-31T23:59:60Z", 1483228800LL * 1000000},  // leap second = next second
      {"0000-01-01T00:00:00Z", -62167219200LL * 1000000},
      {"9999-12-31T23:59:59Z", 253402300799LL * 1000000},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto v = parse_rfc3339_us(c.text);
    REQUIRE(v.has_value());
    CHECK(*v == c.us);
  }
}

TEST_CASE("RFC 3339 parsing: rejected forms") {
  const char* bad[] = {
      "",
      "2025-09-13",
      "2025-09-13T02:11:09",              // no offset
      "2025-09-13T02:11Z",                // no seconds
      "2025-9-13T02:11:09Z",              // short month
      "2025-09-13T2:11:09Z",              // short hour
      "2025-13-01T00:00:00Z",             // month 13
      "2025-00-01T00:00:00Z",             // month 0
      "2025-02-29T00:00:00Z",             // not a leap year
      "2025-04-31T00:00:00Z",             // April has 30 days
      "2025-09-13T24:00:00Z",             // hour 24
      "2025-09-13T02:60:00Z",             // minute 60
      "2025-09-13T02:11:61Z",             // second 61
      "2025-09-13T02:11:09.Z",            // empty fraction
      "2025-09-13T02:11:09.1234567891Z",  // 10 fraction digits
      "2025-09-13T02:11:09+0200",         // offset without colon
      "2025-09-13T02:11:09+24:00",        // offset hour 24
      "2025-09-13T02:11:09Z ",            // trailing space
      " 2025-09-13T02:11:09Z",            // leading space
      "2025-09-13X02:11:09Z",             // bad separator
      "+2025-09-13T02:11:09Z",
      "2025-09-13T02:11:09ZZ",
      "１９７０-01-01T00:00:00Z",  // non-ASCII digits
  };
  for (const char* b : bad) {
    CAPTURE(b);
    CHECK_FALSE(parse_rfc3339_us(b).has_value());
  }
}

TEST_CASE("RFC 3339 formatting and file stamps") {
  CHECK(format_rfc3339_us(kSep13 + 123456) == "2025-09-13T02:11:09.123456Z");
  CHECK(format_rfc3339_us(0) == "1970-01-01T00:00:00.000000Z");
  CHECK(format_rfc3339_us(-1) == "1969-12-31T23:59:59.999999Z");
  CHECK(file_timestamp(kSep13 + 123999) == "2025-09-13_02-11-09.123");
  CHECK(day_directory(kSep13) == "2025-09-13");
  CHECK(day_directory(kSep13 + 86400LL * 1000000 * 366) == "2026-09-14");
  // Round trip over a spread of instants.
  for (int64_t us = -5000000000000LL; us < 4000000000000000LL; us += 123456789012345LL) {
    CAPTURE(us);
    CHECK(parse_rfc3339_us(format_rfc3339_us(us)) == us);
  }
}

TEST_CASE("format_rfc3339_us matches strftime's UTC rendering, with and without a buffer") {
  const int64_t rows[] = {0,
                          1,
                          999999,
                          86399999999,
                          951782400000000,    // 2000-02-29
                          1757729469123456,   // 2025-09-13T02:11:09.123456Z
                          4102444799999999,   // 2099-12-31T23:59:59.999999Z
                          4107542400000000};  // 2100-03-01
  for (int64_t us : rows) {
    CAPTURE(us);
    std::time_t secs = static_cast<std::time_t>(us / 1000000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%06lldZ", static_cast<long long>(us % 1000000));
    CHECK(lp::format_rfc3339_us(us) == buf);
    char out[lp::kRfc3339UsCapacity];
    CHECK(std::string_view(out, lp::format_rfc3339_us(us, out)) == buf);
  }
}
