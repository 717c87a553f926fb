// Input validation of every log-server endpoint, end to end against the real process: hostile
// ids on /requests/{id} and the raw-message endpoints (path traversal in every spelling, with a
// sentinel file planted next to the data dir), hostile /requests parameters, SQL metacharacters
// in text filters, and hostile /ingest bodies and headers. Each row asserts the status, that the
// JSON error names the parameter or the problem, and that nothing changed on disk or in the
// index. Request targets go over a raw socket, byte for byte as written here.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "common/capture_wire.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/log_server_fixture.h"

using namespace e2e;

namespace {

const std::string kSentinel = "SENTINEL-5e7f1c9a-outside-the-data-dir";

std::string pct(const std::string& s) {  // percent-encodes everything but unreserved bytes
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string base64url(const std::string& in) {  // no padding, as the server's cursors
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += a[(v >> s) & 63];
  }
  if (size_t rest = in.size() - i) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (rest == 2) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += a[(v >> 18) & 63];
    out += a[(v >> 12) & 63];
    if (rest == 2) out += a[(v >> 6) & 63];
  }
  return out;
}

std::string u32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// One frame with lengths as given (defaults: the real ones), to forge lying headers.
std::string raw_frame(uint8_t type, const std::string& meta, const std::string& data = "",
                      std::optional<uint32_t> meta_len = {},
                      std::optional<uint32_t> data_len = {}) {
  return std::string(1, static_cast<char>(type)) +
         u32(meta_len.value_or(static_cast<uint32_t>(meta.size()))) +
         u32(data_len.value_or(static_cast<uint32_t>(data.size()))) + meta + data;
}

const std::string kPreamble = std::string("LPCB") + '\x01';
const std::string kBatchFrame = raw_frame(1, R"({"proxy_id":"p","seq":1})");

// What must hold after every rejected input: no exchange files, no rows, nothing applied.
void check_untouched(LogServer& ls, httplib::Client& c, size_t files, size_t rows) {
  CHECK(count_files(ls.data()) == files);
  CHECK(get_json(c, "/requests?limit=1000")["requests"].size() == rows);
  CHECK(metric(c, "log_server_exchanges") == static_cast<double>(rows));
}

}  // namespace

TEST_CASE("validation: hostile ids on /requests/{id} and the raw endpoints never serve a file") {
  LogServer ls;
  auto c = ls.client();
  // The sentinel sits next to the data dir (ls.data() is DIR/data), where ../ would lead.
  const std::string sentinel = ls.dir() + "/secret.txt";
  write_file(sentinel, kSentinel);
  write_file(ls.dir() + "/secret.bin", kSentinel);
  const std::string a = make_id(1);
  REQUIRE(post(c, Batch("p", 1).exchange(a, "2025-09-13T02:11:09Z", 200).bytes())->status == 200);

  // The valid forms answer 200 on every endpoint: the refusals below are not a broken server.
  for (const std::string& id : {a, a.substr(0, 8), std::string("0A000001")}) {
    CAPTURE(id);
    CHECK(http_get(ls.port(), "/requests/" + id).status() == 200);
    CHECK(http_get(ls.port(), "/requests/" + id + "/request").status() == 200);
    CHECK(http_get(ls.port(), "/requests/" + id + "/response").status() == 200);
  }

  // kId: 400 {"parameter": "id"}; kRoute: 404 "no such endpoint" (the decoded path has more
  // segments than any route); kUnknown: 404 "no exchange"; kTooLong: 414.
  enum Want { kId, kRoute, kUnknown, kTooLong };
  struct Row {
    std::string id;    // as written in the request target
    Want detail, raw;  // for /requests/{id} and for /requests/{id}/request|response
  };
  const std::string abs = sentinel;  // starts with '/'
  const std::vector<Row> rows = {
      {"", kId, kId},
      {"..", kId, kId},
      {".", kId, kId},
      {"%2e%2e", kId, kId},
      {"%2E%2E", kId, kId},
      {"../secret.txt", kRoute, kRoute},
      {"../../secret.txt", kRoute, kRoute},
      {"..%2fsecret.txt", kRoute, kRoute},
      {"..%2Fsecret.txt", kRoute, kRoute},
      {"%2e%2e/secret.txt", kRoute, kRoute},
      {"%2e%2e%2fsecret.txt", kRoute, kRoute},
      {"%2e%2e%2f%2e%2e%2fsecret.txt", kRoute, kRoute},
      {"%252e%252e%252fsecret.txt", kId, kId},  // double encoding stays text
      {"..%252fsecret.txt", kId, kId},
      {"..\\secret.txt", kId, kId},
      {"..%5csecret.txt", kId, kId},
      {"..%5c..%5csecret.txt", kId, kId},
      {"..;/secret.txt", kRoute, kRoute},
      {"0a000001%00", kId, kId},
      {"0a000001%00/../../secret.txt", kRoute, kRoute},
      {"%00", kId, kId},
      {abs, kRoute, kRoute},  // "/requests//abs/path"
      {pct(abs), kRoute, kRoute},
      {"0a000001/../../secret.txt", kRoute, kRoute},
      {"0a000001%2f..%2f..%2fsecret.txt", kRoute, kRoute},
      {"%C3%A90a00001", kId, kId},  // non-ASCII
      {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", kId, kId},
      {"%EF%BC%90a000001", kId, kId},  // fullwidth digit zero
      {"0a00000", kId, kId},           // 7 characters
      {a + "0", kId, kId},             // 37 characters
      {std::string(4000, 'a'), kId, kId},
      {std::string(9000, 'a'), kTooLong, kTooLong},
      {"%200a000001", kId, kId},
      {"0a000001%20", kId, kId},
      {"0a000001%", kId, kId},
      {"0a000001*", kId, kId},
      {"0a00000_", kId, kId},
      {"0a000001'%20OR%20'1'='1", kId, kId},
      {"--------", kUnknown, kUnknown},
      {"ffffffff", kUnknown, kUnknown},
  };
  for (const Row& row : rows) {
    for (const char* suffix : {"", "/request", "/response"}) {
      std::string target = "/requests/" + row.id + suffix;
      CAPTURE(target.substr(0, 200));
      HttpResponse r = http_get(ls.port(), target);
      Want want = *suffix ? row.raw : row.detail;
      CHECK(r.head.get("Content-Type") == "application/json");
      CHECK(r.body.find(kSentinel) == std::string::npos);
      json j = r.body_json();
      REQUIRE(j["error"].is_string());
      const std::string error = j["error"];
      switch (want) {
        case kId:
          CHECK(r.status() == 400);
          CHECK(j["parameter"] == "id");
          CHECK(error.find("exchange id") != std::string::npos);
          break;
        case kRoute:
          CHECK(r.status() == 404);
          CHECK(error.find("no such endpoint") != std::string::npos);
          break;
        case kUnknown:
          CHECK(r.status() == 404);
          CHECK(error.find("no exchange with id") != std::string::npos);
          break;
        case kTooLong:
          CHECK(r.status() == 414);
          CHECK(error.find("too long") != std::string::npos);
          break;
      }
    }
  }

  // These endpoints take no query parameters: one is refused by name, not ignored.
  for (const std::string& target : {"/requests/" + a + "?x=1", "/requests/" + a + "/request?x=1",
                                    "/requests/" + a + "/response?x=../secret.txt"}) {
    CAPTURE(target);
    HttpResponse r = http_get(ls.port(), target);
    CHECK(r.status() == 400);
    CHECK(r.body_json()["parameter"] == "x");
  }

  // Range on the raw endpoints is served by the log server itself: a range past the end is a
  // 416 naming the Range header (cpp-httplib alone answered 206 with a wrapped-around length),
  // and no JSON answer is ever cut to a Range.
  auto get_with_range = [&](const std::string& target, const std::string& range) {
    return http_exchange(
        ls.port(),
        make_request("GET", target, ls.port(), {{"Range", range}, {"Connection", "close"}}), "GET");
  };
  const std::string raw_target = "/requests/" + a + "/request";
  const std::string whole = http_get(ls.port(), raw_target).body;
  REQUIRE(whole.size() > 10);
  struct RangeRow {
    std::string range;
    int status;
    std::string body;  // for 2xx: the bytes; for 416: part of the error
  };
  const std::vector<RangeRow> range_rows = {
      {"bytes=5-8", 206, whole.substr(5, 4)},
      {"bytes=-4", 206, whole.substr(whole.size() - 4)},
      {"bytes=3-999999", 206, whole.substr(3)},
      {"bytes=0-0,2-2", 200, whole},  // several ranges: the whole message
      {"bytes=999999-", 416, "starts at byte 999999"},
      {"bytes=" + std::to_string(whole.size()) + "-", 416, "starts at byte"},
      {"bytes=-0", 416, "empty suffix"},
      {"bytes=8-5", 416, "expected bytes="},
      {"bytes=1-2-3", 416, "expected bytes="},
  };
  for (const RangeRow& row : range_rows) {
    CAPTURE(row.range);
    HttpResponse r = get_with_range(raw_target, row.range);
    CHECK(r.status() == row.status);
    if (row.status == 416) {
      // The library itself refuses unparsable ranges, before the size is known.
      if (row.body != "expected bytes=") {
        CHECK(r.head.get("Content-Range") == "bytes */" + std::to_string(whole.size()));
      }
      CHECK(r.body_json()["error"].get<std::string>().find(row.body) != std::string::npos);
    } else {
      CHECK(r.body == row.body);
    }
  }
  for (const std::string& target : {"/requests/" + a, std::string("/requests/zzzzzzzz"),
                                    std::string("/requests?limit=1"), "/requests/" + a + "?x=1"}) {
    CAPTURE(target);
    HttpResponse r = get_with_range(target, "bytes=0-3");
    CHECK(r.status() != 206);
    CHECK(r.body_json().is_object());  // the whole JSON document
  }

  CHECK(read_file(sentinel) == kSentinel);  // untouched, and nothing new on disk
  check_untouched(ls, c, 2, 1);
}

TEST_CASE("validation: /requests parameters get 400 naming the parameter") {
  LogServer ls;
  auto c = ls.client();
  const std::string a = make_id(1);
  Batch batch("p", 1);
  for (int i = 1; i <= 3; ++i) batch.exchange(make_id(i), "2025-09-13T02:11:09Z", 200);
  REQUIRE(post(c, batch.bytes())->status == 200);
  json p1 = get_json(c, "/requests?limit=1");
  REQUIRE(p1["next_cursor"].is_string());
  const std::string cursor = p1["next_cursor"];

  struct Row {
    std::string query;      // after "/requests?", as sent
    std::string parameter;  // named in the answer
    std::string says;       // part of the error message
  };
  const std::string long_value(2000, 'x');
  const std::vector<Row> rows = {
      // limit: an integer in 1..1000
      {"limit=0", "limit", "between 1 and 1000"},
      {"limit=-1", "limit", "between 1 and 1000"},
      {"limit=1001", "limit", "between 1 and 1000"},
      {"limit=99999999999999999999999", "limit", "between 1 and 1000"},
      {"limit=1e3", "limit", "between 1 and 1000"},
      {"limit=0x10", "limit", "between 1 and 1000"},
      {"limit=1.5", "limit", "between 1 and 1000"},
      {"limit=%2B5", "limit", "between 1 and 1000"},
      {"limit=%205", "limit", "between 1 and 1000"},
      {"limit=", "limit", "between 1 and 1000"},
      {"limit", "limit", "between 1 and 1000"},
      {"limit=5&limit=6", "limit", "more than once"},
      {"limit=5&limit=5", "limit", "more than once"},
      // status: 100..599
      {"status=-200", "status", "between 100 and 599"},
      {"status=200.0", "status", "between 100 and 599"},
      {"status=2OO", "status", "between 100 and 599"},
      {"status=1000", "status", "between 100 and 599"},
      {"status=", "status", "between 100 and 599"},
      {"status=200&status=404", "status", "more than once"},
      // method: letters only
      {"method=", "method", "HTTP method"},
      {"method=G%00T", "method", "HTTP method"},
      {"method=GET%27%20OR%201%3D1", "method", "HTTP method"},
      {"method=" + std::string(40, 'G'), "method", "HTTP method"},
      // outcome: one of five words, exactly
      {"outcome=", "outcome", "expected one of"},
      {"outcome=COMPLETE", "outcome", "expected one of"},
      {"outcome=complete%00", "outcome", "expected one of"},
      {"outcome=complete%27%20OR%20%271%27%3D%271", "outcome", "expected one of"},
      // since/until: RFC 3339 with an offset; until not before since
      {"since=", "since", "RFC 3339"},
      {"since=yesterday", "since", "RFC 3339"},
      {"since=2025-13-01T00:00:00Z", "since", "RFC 3339"},
      {"since=99999-01-01T00:00:00Z", "since", "RFC 3339"},
      {"until=2025-09-13T02:11:09", "until", "RFC 3339"},
      {"until=1757729469", "until", "RFC 3339"},
      {"since=2025-09-13T02:11:09Z&until=2025-09-13T02:11:08Z", "until", "earlier than since"},
      // text filters: no control bytes, bounded
      {"q=%00", "q", "control character"},
      {"q=a%0Ab", "q", "control character"},
      {"q=" + long_value, "q", "longer than 1024"},
      {"route=%00", "route", "control character"},
      {"route=a&route=b", "route", "more than once"},
      // replay_of: a full id
      {"replay_of=", "replay_of", "36-character"},
      {"replay_of=0a000001", "replay_of", "36-character"},
      {"replay_of=..%2F..%2Fsecret.txt", "replay_of", "36-character"},
      {"replay_of=" + a + "%27%20OR%201%3D1%20--", "replay_of", "36-character"},
      // cursor: only what next_cursor returned
      {"cursor=", "cursor", "next_cursor"},
      {"cursor=%21%21", "cursor", "next_cursor"},
      {"cursor=" + base64url("0123." + a), "cursor", "next_cursor"},  // not canonical
      {"cursor=" + base64url("-0." + a), "cursor", "next_cursor"},
      {"cursor=" + base64url("123." + a + "' OR 1=1 --"), "cursor", "next_cursor"},
      {"cursor=" + base64url("123.../../secret.txt"), "cursor", "next_cursor"},
      {"cursor=" + base64url("123.ABC"), "cursor", "next_cursor"},
      {"cursor=" + base64url("123"), "cursor", "next_cursor"},
      {"cursor=" + cursor + "%3D%3D", "cursor", "next_cursor"},  // padded
      {"cursor=" + cursor + "A", "cursor", "next_cursor"},
      {"cursor=" + cursor.substr(1), "cursor", "next_cursor"},
      {"cursor=" + cursor + "&cursor=" + cursor, "cursor", "more than once"},
      {"cursor=" + std::string(200, 'A'), "cursor", "next_cursor"},
      // unknown parameters are refused by name, never ignored
      {"colour=red", "colour", "unknown parameter"},
      {"Limit=5", "Limit", "unknown parameter"},
      {"limit%5B%5D=5", "limit[]", "unknown parameter"},
      {"limit=5&debug=1", "debug", "unknown parameter"},
      {"=5", "", "without a name"},
      {"limit=5&=", "", "without a name"},
      {"%C3%A9=1", "\xc3\xa9", "unknown parameter"},
  };
  for (const Row& row : rows) {
    std::string target = "/requests?" + row.query;
    CAPTURE(target.substr(0, 200));
    HttpResponse r = http_get(ls.port(), target);
    CHECK(r.status() == 400);
    CHECK(r.head.get("Content-Type") == "application/json");
    json j = r.body_json();
    CHECK(j["parameter"] == row.parameter);
    REQUIRE(j["error"].is_string());
    CHECK(j["error"].get<std::string>().find(row.says) != std::string::npos);
  }

  // Edge values that are valid, and the two documented empty values.
  CHECK(http_get(ls.port(), "/requests?limit=1000").status() == 200);
  CHECK(http_get(ls.port(), "/requests?limit=1&status=599").status() == 200);
  CHECK(get_json(c, "/requests?&&limit=2&")["requests"].size() == 2);  // empty pairs: nothing
  CHECK(get_json(c, "/requests?q=100%25_&limit=1")["requests"].empty());
  CHECK(get_json(c, "/requests?q=")["requests"].size() == 3);      // empty q: no filter
  CHECK(get_json(c, "/requests?route=")["requests"].size() == 0);  // the route-less exchanges
  CHECK(get_json(c, "/requests?replay_of=" + std::string(36, 'F'))["requests"].empty());
  CHECK(get_json(c, "/requests?limit=2&cursor=" + cursor)["requests"].size() == 2);
  // Any one-character edit of a real cursor is refused, or is another well-formed position:
  // never a 5xx, never a page that is not JSON.
  const std::string alphabet = "AZaz09-_";
  for (size_t i = 0; i < cursor.size(); ++i) {
    std::string edited = cursor;
    edited[i] = alphabet[i % alphabet.size()] == cursor[i] ? 'B' : alphabet[i % alphabet.size()];
    CAPTURE(edited);
    HttpResponse r = http_get(ls.port(), "/requests?cursor=" + edited);
    CHECK((r.status() == 200 || r.status() == 400));
    if (r.status() == 400) CHECK(r.body_json()["parameter"] == "cursor");
  }
  check_untouched(ls, c, 6, 3);
}

TEST_CASE("validation: SQL metacharacters in text filters are literal text") {
  LogServer ls;
  auto c = ls.client();
  struct Ex {
    std::string route, path;
  };
  const std::vector<Ex> exchanges = {
      {"mock", "/mock/v1/a%20b"},           {"mock", "/mock/v1/100%_done"},
      {"mock", "/mock/v1/x' OR 1=1 --"},    {"mock", "/mock/v1/\"; DROP TABLE exchanges; --"},
      {"mock", "/mock/v1/plain_path"},      {"mock", "/mock/v1/under_score"},
      {"mock", "/mock/v1/nothing"},         {"r' OR '1'='1", "/r/v1/route-with-quote"},
      {"mo%", "/mo/v1/route-with-percent"},
  };
  Batch batch("p", 1);
  for (size_t i = 0; i < exchanges.size(); ++i) {
    batch.exchange(make_id(static_cast<int>(i)), "2025-09-13T02:11:09Z", 200, exchanges[i].route,
                   exchanges[i].path);
  }
  REQUIRE(post(c, batch.bytes())->status == 200);
  const size_t n = exchanges.size();

  auto ids = [&](const std::string& query) {
    json page = get_json(c, "/requests?limit=1000&" + query);
    std::set<int> out;
    for (const auto& r : page["requests"]) {
      out.insert(std::stoi(r["id"].get<std::string>().substr(24)));  // make_id's number
    }
    return out;
  };
  // The expected rows are computed the plain way: substring / equality on the stored values.
  auto literal = [&](const std::string& value, bool route) {
    std::set<int> out;
    for (size_t i = 0; i < n; ++i) {
      const Ex& e = exchanges[i];
      if (route ? e.route == value : e.path.find(value) != std::string::npos) {
        out.insert(static_cast<int>(i));
      }
    }
    return out;
  };
  const std::string texts[] = {"' OR 1=1 --",
                               "' OR '1'='1",
                               "%",
                               "_",
                               "%_",
                               "\"; DROP TABLE exchanges; --",
                               "'; DELETE FROM exchanges; --",
                               "*",
                               "\\",
                               "?",
                               "?1",
                               ":id",
                               "a%20b",
                               "a b",
                               "r' OR '1'='1",
                               "mo%",
                               "mock",
                               "mo_k"};
  for (const std::string& t : texts) {
    CAPTURE(t);
    CHECK(ids("q=" + pct(t)) == literal(t, false));
    CHECK(ids("route=" + pct(t)) == literal(t, true));
  }
  // Sanity of the table: the metacharacter rows do select something where they should.
  CHECK(literal("%", false).size() == 2);
  CHECK(literal("_", false).size() == 3);
  CHECK(literal("r' OR '1'='1", true).size() == 1);

  // The table is intact: every row is still there, and it still takes new rows.
  check_untouched(ls, c, 2 * n, n);
  REQUIRE(
      post(c, Batch("p", 2).exchange(make_id(100), "2025-09-13T02:11:10Z", 200).bytes())->status ==
      200);
  CHECK(get_json(c, "/requests?limit=1000")["requests"].size() == n + 1);
}

TEST_CASE("validation: hostile /ingest bodies and headers get 4xx naming the problem") {
  LogServer ls;
  auto c = ls.client();
  const std::string id = make_id(1);
  const std::string good = Batch("p", 1).exchange(id, "2025-09-13T02:11:09Z", 200).bytes();
  const std::string begin_meta = R"({"id":")" + id + R"(","started_at":"2025-09-13T02:11:09Z"})";
  const std::string max_meta = std::to_string(lp::wire::kMaxMetaBytes);
  const std::string max_data = std::to_string(lp::wire::kMaxDataBytes);

  struct Row {
    const char* name;
    std::string body;
    int status;
    std::string says;  // part of the error
  };
  const std::vector<Row> rows = {
      {"wrong magic", "LPCX\x01" + kBatchFrame, 400, "bad magic at byte 0"},
      {"a zip file", std::string("PK\x03\x04", 4) + std::string(40, '\0'), 400, "bad magic"},
      {"a JSON body", R"({"proxy_id":"p","seq":1})", 400, "bad magic"},
      {"magic only", "LPCB", 400, "truncated at byte 4"},
      {"preamble only", kPreamble, 400, "missing the batch frame"},
      {"version 0", std::string("LPCB\x00", 5) + kBatchFrame, 400, "unsupported version 0"},
      {"version 2", "LPCB\x02" + kBatchFrame, 400, "unsupported version 2"},
      {"version 255", "LPCB\xff" + kBatchFrame, 400, "unsupported version 255"},
      {"frame header cut", kPreamble + kBatchFrame.substr(0, 5), 400, "truncated frame header"},
      {"meta length beyond the body",
       kPreamble + raw_frame(1, R"({"proxy_id":"p","seq":1})", "", 400), 400, "truncated frame"},
      {"data length beyond the body",
       kPreamble + kBatchFrame + raw_frame(2, begin_meta, "abc", std::nullopt, 1000), 400,
       "truncated frame (needs"},
      {"meta length 2^32-1", kPreamble + raw_frame(1, "{}", "", 0xffffffffu), 400,
       "meta length 4294967295 exceeds " + max_meta},
      {"meta length one over", kPreamble + raw_frame(1, "{}", "", lp::wire::kMaxMetaBytes + 1), 400,
       "exceeds " + max_meta},
      {"data length 2^32-1",
       kPreamble + kBatchFrame + raw_frame(2, begin_meta, "", {}, 0xffffffffu), 400,
       "data length 4294967295 exceeds " + max_data},
      {"data length one over",
       kPreamble + kBatchFrame + raw_frame(2, begin_meta, "", {}, lp::wire::kMaxDataBytes + 1), 400,
       "exceeds " + max_data},
      {"unknown frame type", kPreamble + kBatchFrame + raw_frame(99, begin_meta), 400,
       "unknown frame type 99"},
      {"frame type 0", kPreamble + kBatchFrame + raw_frame(0, begin_meta), 400,
       "unknown frame type 0"},
      {"first frame not a batch frame", kPreamble + raw_frame(2, begin_meta), 400,
       "first frame is begin, expected batch"},
      {"meta not JSON", kPreamble + raw_frame(1, "{proxy_id: p}"), 400, "meta is not valid JSON"},
      {"meta an array", kPreamble + raw_frame(1, "[1,2]"), 400, "not a JSON object"},
      {"no proxy_id", kPreamble + raw_frame(1, R"({"seq":1})"), 400, "proxy_id"},
      {"empty proxy_id", kPreamble + raw_frame(1, R"({"proxy_id":"","seq":1})"), 400,
       "proxy_id must be"},
      {"negative seq", kPreamble + raw_frame(1, R"({"proxy_id":"p","seq":-1})"), 400, "seq"},
      {"string seq", kPreamble + raw_frame(1, R"({"proxy_id":"p","seq":"1"})"), 400, "seq"},
      {"id with path traversal",
       kPreamble + kBatchFrame + raw_frame(2, R"({"id":"../../../../../../tmp/x/secret.txt"})"),
       400, "id is not a lowercase UUID"},
      {"id of 36 dots and slashes",
       kPreamble + kBatchFrame +
           raw_frame(2, R"({"id":")" + std::string(12, '.') + std::string(24, '/') + R"("})"),
       400, "id is not a lowercase UUID"},
      {"upper-case id",
       kPreamble + kBatchFrame + raw_frame(2, R"({"id":"0A000001-0000-4000-8000-000000000001"})"),
       400, "id is not a lowercase UUID"},
      {"id not a string", kPreamble + kBatchFrame + raw_frame(2, R"({"id":1})"), 400,
       "lacks a string id"},
      {"no id", kPreamble + kBatchFrame + raw_frame(4, "{}", "body"), 400, "lacks a string id"},
      // A valid exchange first: the bad frame after it rejects the whole batch.
      {"good exchange, then a bad frame", good + raw_frame(4, R"({"id":"x"})"), 400, "frame 7"},
      {"good exchange, then garbage", good + "garbage", 400, "truncated frame header"},
      {"good batch cut short", good.substr(0, good.size() - 3), 400, "truncated frame"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.name);
    auto r = post(c, row.body);
    REQUIRE(r);
    CHECK(r->status == row.status);
    CHECK(r->get_header_value("Content-Type") == "application/json");
    json j = json::parse(r->body, nullptr, false);
    REQUIRE(j["error"].is_string());
    const std::string error = j["error"];
    INFO(error);
    CHECK(error.rfind("malformed batch: ", 0) == 0);
    CHECK(error.find(row.says) != std::string::npos);
    CHECK(count_files(ls.data()) == 0);
  }

  // Headers: a body that is not a batch by its type, a Content-Length that is not a number,
  // one beyond the 64 MiB limit (refused before reading). Raw requests, exactly as written.
  struct HeaderRow {
    const char* name;
    std::vector<std::pair<std::string, std::string>> headers;
    int status;
    std::string says;
  };
  const std::vector<HeaderRow> header_rows = {
      {"multipart", {{"Content-Type", "multipart/form-data; boundary=xx"}}, 415, "Content-Type"},
      {"form", {{"Content-Type", "application/x-www-form-urlencoded"}}, 415, "Content-Type"},
      {"json", {{"Content-Type", "application/json"}}, 415, "application/octet-stream"},
      {"text", {{"Content-Type", "text/plain"}}, 415, "application/octet-stream"},
      {"Content-Length abc",
       {{"Content-Type", "application/octet-stream"}, {"Content-Length", "abc"}},
       400,
       "Content-Length"},
      {"Content-Length -1",
       {{"Content-Type", "application/octet-stream"}, {"Content-Length", "-1"}},
       400,
       "Content-Length"},
      {"Content-Length 2^64",
       {{"Content-Type", "application/octet-stream"}, {"Content-Length", "18446744073709551616"}},
       413,
       "larger than 67108864"},
      {"Content-Length 10^23",
       {{"Content-Type", "application/octet-stream"},
        {"Content-Length", "99999999999999999999999"}},
       413,
       "larger than 67108864"},
  };
  for (const HeaderRow& row : header_rows) {
    CAPTURE(row.name);
    auto headers = row.headers;
    headers.push_back({"Connection", "close"});
    bool has_length = false;
    for (const auto& [k, v] : headers) has_length |= k == "Content-Length";
    std::string request =
        make_request("POST", "/ingest", ls.port(), headers, has_length ? "" : good);
    if (has_length) request += good;  // whatever the header says, a batch follows
    HttpResponse r = http_exchange(ls.port(), request, "POST");
    CHECK(r.status() == row.status);
    json j = r.body_json();
    REQUIRE(j["error"].is_string());
    CHECK(j["error"].get<std::string>().find(row.says) != std::string::npos);
    CHECK(count_files(ls.data()) == 0);
  }

  // A body cut short by the client (Content-Length promises more, then the connection closes)
  // is never applied: after it, the same batch applies whole, as (p, 1), exactly once.
  {
    RawConn conn(ls.port());
    std::string head = make_request("POST", "/ingest", ls.port(),
                                    {{"Content-Type", "application/octet-stream"},
                                     {"Content-Length", std::to_string(good.size())}});
    REQUIRE(conn.send_all(head + good.substr(0, good.size() / 2)));
    conn.close();
  }
  check_untouched(ls, c, 0, 0);
  CHECK(metric(c, "log_server_batches_applied_total") == 0);
  auto ok = post(c, good);
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(json::parse(ok->body)["applied"] == true);  // the ledger had no (p, 1): not a duplicate
  check_untouched(ls, c, 2, 1);
  CHECK(metric(c, "log_server_batches_applied_total") == 1);
}
