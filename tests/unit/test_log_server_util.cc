// Pure pieces of the log server: RFC 3339 parsing and formatting, file stamps, the page
// cursor, stored-head parsing, /requests parameter validation, and the bearer-token check.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "log-server/auth.h"
#include "log-server/cursor.h"
#include "log-server/list_query.h"

using namespace lp::logsrv;

namespace {

constexpr int64_t kSep13 = 1757729469LL * 1000000;  // 2025-09-13T02:11:09Z

}  // namespace

TEST_CASE("cursor round trip") {
  Cursor c{kSep13 + 42, "092d0424-0000-4000-8000-000000000001"};
  std::string text = encode_cursor(c);
  for (char ch : text) {
    CAPTURE(text);
    CHECK(((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_'));
  }
  CHECK(decode_cursor(text) == c);
  Cursor negative{-7, "abc"};
  CHECK(decode_cursor(encode_cursor(negative)) == negative);
}

TEST_CASE("cursor decoding rejects garbage") {
  const std::string bad[] = {
      "",
      "!!!!",
      "a",                                    // impossible base64 length
      "MTIz",                                 // "123": no dot
      "LmFiYw",                               // ".abc": no number
      "MTIzLg",                               // "123.": empty id
      "MTIzLkFCQw",                           // "123.ABC": upper case
      "MTIzLi4vLi4vZXRj",                     // "123../../etc"
      "eDEyMy5hYmM",                          // "x123.abc"
      "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OS5hYmM",  // number out of range
      "MTIzLmFiYw==",                         // padding is not used
      "MTIzLmFiYx",                           // non-canonical trailing bits
      std::string(200, 'A'),                  // too long
  };
  for (const auto& b : bad) {
    CAPTURE(b);
    CHECK_FALSE(decode_cursor(b).has_value());
  }
}

namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

ParamError parse_error(const Params& p) {
  ListQuery q;
  ParamError e;
  bool ok = parse_list_query(p, &q, &e);
  CHECK_FALSE(ok);
  return e;
}

}  // namespace

TEST_CASE("/requests parameters: valid") {
  ListQuery q;
  ParamError e;
  REQUIRE(parse_list_query({}, &q, &e));
  CHECK(q.limit == kDefaultLimit);
  CHECK_FALSE(q.route);
  CHECK_FALSE(q.cursor);

  Cursor c{5, "abcdef01"};
  REQUIRE(parse_list_query({{"route", "lmstudio"},
                            {"method", "post"},
                            {"status", "404"},
                            {"outcome", "client_aborted"},
                            {"since", "2025-09-13T02:11:09Z"},
                            {"until", "2025-09-13T03:11:09+01:00"},
                            {"q", "/chat"},
                            {"limit", "1000"},
                            {"cursor", encode_cursor(c)}},
                           &q, &e));
  CHECK(q.route == "lmstudio");
  CHECK(q.method == "POST");
  CHECK(q.status == 404);
  CHECK(q.outcome == "client_aborted");
  CHECK(q.since_us == kSep13);
  CHECK(q.until_us == kSep13);
  CHECK(q.q == "/chat");
  CHECK(q.limit == 1000);
  CHECK(q.cursor == c);

  REQUIRE(parse_list_query({{"q", ""}, {"route", ""}}, &q, &e));
  CHECK_FALSE(q.q);      // an empty substring filters nothing
  CHECK(q.route == "");  // the route of exchanges no route matched
  for (const char* o : kOutcomes) {
    CHECK(parse_list_query({{"outcome", o}}, &q, &e));
  }
}

TEST_CASE("/requests parameters: each problem names its parameter") {
  struct Case {
    Params params;
    const char* parameter;
  };
  const Case cases[] = {
      {{{"limit", "0"}}, "limit"},
      {{{"limit", "1001"}}, "limit"},
      {{{"limit", "-1"}}, "limit"},
      {{{"limit", "10x"}}, "limit"},
      {{{"limit", ""}}, "limit"},
      {{{"limit", "99999999999999999999999"}}, "limit"},
      {{{"status", "99"}}, "status"},
      {{{"status", "600"}}, "status"},
      {{{"status", "2OO"}}, "status"},
      {{{"status", " 200"}}, "status"},
      {{{"outcome", "done"}}, "outcome"},
      {{{"outcome", ""}}, "outcome"},
      {{{"method", ""}}, "method"},
      {{{"method", "GET POST"}}, "method"},
      {{{"since", "yesterday"}}, "since"},
      {{{"until", "2025-09-13"}}, "until"},
      {{{"since", "2025-09-13T02:11:09Z"}, {"until", "2025-09-13T02:11:08Z"}}, "until"},
      {{{"cursor", "garbage!"}}, "cursor"},
      {{{"cursor", ""}}, "cursor"},
      {{{"sort", "asc"}}, "sort"},
      {{{"Limit", "5"}}, "Limit"},
      {{{"route", "a"}, {"route", "b"}}, "route"},
      {{{"q", std::string(2000, 'x')}}, "q"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.parameter);
    ParamError e = parse_error(c.params);
    CHECK(e.parameter == c.parameter);
    CHECK_FALSE(e.message.empty());
  }
}

TEST_CASE("bearer auth") {
  BearerAuth off("");
  CHECK_FALSE(off.enabled());
  CHECK(off.allows(""));

  BearerAuth on("s3cret-token");
  CHECK(on.enabled());
  CHECK(on.allows("Bearer s3cret-token"));
  CHECK(on.allows("bearer s3cret-token"));
  CHECK_FALSE(on.allows(""));
  CHECK_FALSE(on.allows("Bearer"));
  CHECK_FALSE(on.allows("Bearer "));
  CHECK_FALSE(on.allows("Bearer s3cret-toke"));
  CHECK_FALSE(on.allows("Bearer s3cret-token2"));
  CHECK_FALSE(on.allows("Basic s3cret-token"));
  CHECK_FALSE(on.allows("s3cret-token"));

  CHECK_FALSE(token_problem("abc-DEF_123.~+/=").has_value());
  CHECK(token_problem("abc%41").has_value());
  CHECK(token_problem("a b").has_value());
  CHECK(token_problem(std::string("a\x01")).has_value());
}
