// The hand-written JSON writer must produce exactly what nlohmann::json's
// dump(-1, ' ', false, replace) produces: the capture frames' meta bytes did not change when
// the proxy stopped building a DOM per frame.
#include "common/json_writer.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "common/capture_wire.h"

using lp::append_json_string;
using nlohmann::json;

namespace {

std::string nlohmann_dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ours(std::string_view s) {
  std::string out;
  append_json_string(&out, s);
  return out;
}

}  // namespace

TEST_CASE("append_json_string matches nlohmann dump for hostile strings") {
  const std::string rows[] = {
      "",
      "plain /v1/chat/completions?x=1",
      "quote \" and backslash \\ and slash /",
      std::string("nul \0 inside", 12),
      "\x01\x02\x07\x08\t\n\x0b\x0c\r\x0e\x1f\x20\x7f",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",  // é € 😀
      "\xef\xbb\xbf BOM",
      "\xff",
      "\xfe\xff lone bytes",
      "\x80 continuation first",
      "\xc3",                     // truncated 2-byte sequence at the end
      "\xe2\x82",                 // truncated 3-byte sequence at the end
      "\xf0\x9f\x98",             // truncated 4-byte sequence at the end
      "\xc3(",                    // broken by ASCII: the '(' must survive
      "\xe2\x28\xa1",             // broken in the middle
      "\xe2\x82\x28",             // broken at the last byte
      "\xc0\xaf overlong slash",  // overlong encodings are invalid
      "\xe0\x80\xaf overlong",
      "\xed\xa0\x80 surrogate",    // UTF-16 surrogates are invalid in UTF-8
      "\xf4\x90\x80\x80 too big",  // above U+10FFFF
      "\xf5\x80\x80\x80",
      "\xc3\xc3\xa9",  // a start byte breaks a sequence and starts a valid one
      "\xe2\x82\xe2\x82\xac",
      "a\"\\\x01\xc3\xa9\xff\"",
      std::string(300, '\\'),
      std::string(1000, '\xff'),
      "</script><!-- \u2028 \u2029",
  };
  for (const auto& s : rows) {
    CAPTURE(s);
    CHECK(ours(s) == nlohmann_dump(json(s)));
  }
}

TEST_CASE("append_json_string matches nlohmann dump for random byte strings") {
  // Bytes weighted toward the interesting classes: ASCII, controls, escapes, continuation
  // bytes, every kind of start byte and the invalid ones.
  const std::string alphabet =
      "aZ09 -/?=&\"\\\x01\x0a\x0d\x1f\x7f"
      "\x80\x8f\x90\x9f\xa0\xbf\xc0\xc1\xc2\xc3\xdf\xe0\xe1\xed\xee\xef\xf0\xf1\xf4\xf5\xfe\xff";
  std::mt19937 rng(12345);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::uniform_int_distribution<size_t> length(0, 24);
  for (int n = 0; n < 50000; ++n) {
    std::string s(length(rng), '\0');
    for (char& c : s) c = alphabet[pick(rng)];
    std::string a = ours(s);
    std::string b = nlohmann_dump(json(s));
    if (a != b) {
      CAPTURE(s);
      REQUIRE(a == b);
    }
  }
}

TEST_CASE("JsonObjectWriter matches nlohmann dump for the capture metas") {
  const std::string hostile = "x\"\\\n\xff\xc3";
  {
    std::string out;
    lp::JsonObjectWriter w(&out);
    w.field("client_ip", "127.0.0.1");
    w.field("destination", hostile);
    w.field("id", "0123abcd-0000-4000-8000-000000000000");
    w.field("method", "POST");
    w.field("proxy_path", "/a?b=\"c\"");
    w.field("route", "");
    w.field("started_at", "2025-09-13T02:11:09.123456Z");
    w.close();
    json j = {{"id", "0123abcd-0000-4000-8000-000000000000"},
              {"route", ""},
              {"method", "POST"},
              {"proxy_path", "/a?b=\"c\""},
              {"destination", hostile},
              {"client_ip", "127.0.0.1"},
              {"started_at", "2025-09-13T02:11:09.123456Z"}};
    CHECK(out == nlohmann_dump(j));
  }
  {
    std::string out;
    lp::JsonObjectWriter w(&out);
    w.field("error", hostile);
    w.field("id", "i");
    w.field("outcome", "complete");
    w.field("request_bytes", std::numeric_limits<uint64_t>::max());
    w.field("response_bytes", uint64_t{0});
    w.field("status", 200);
    w.open_object("timings");
    w.field("first_byte_us", int64_t{-1});
    w.field("request_forwarded_us", std::numeric_limits<int64_t>::min());
    w.field("total_us", std::numeric_limits<int64_t>::max());
    w.close_object();
    w.close();
    json timings = {{"total_us", std::numeric_limits<int64_t>::max()},
                    {"request_forwarded_us", std::numeric_limits<int64_t>::min()},
                    {"first_byte_us", int64_t{-1}}};
    json j = {{"id", "i"},
              {"outcome", "complete"},
              {"status", 200},
              {"request_bytes", std::numeric_limits<uint64_t>::max()},
              {"response_bytes", uint64_t{0}},
              {"timings", timings},
              {"error", hostile}};
    CHECK(out == nlohmann_dump(j));
  }
  {
    std::string out;
    lp::JsonObjectWriter w(&out);
    w.open_object("a");
    w.close_object();
    w.field("b", int64_t{0});
    w.close();
    CHECK(out == nlohmann_dump(json{{"a", json::object()}, {"b", 0}}));
  }
}

TEST_CASE("start_frame and finish_frame write the bytes append_frame writes") {
  using lp::wire::FrameType;
  const std::string data("he\0llo\xff", 7);
  std::string a;
  lp::wire::append_frame(&a, FrameType::kResponseBody,
                         json{{"id", "0123abcd-0000-4000-8000-000000000000"}, {"t_us", 42}}, data);
  std::string b = "prefix";
  size_t start = lp::wire::start_frame(&b, FrameType::kResponseBody);
  lp::JsonObjectWriter w(&b);
  w.field("id", "0123abcd-0000-4000-8000-000000000000");
  w.field("t_us", int64_t{42});
  w.close();
  lp::wire::finish_frame(&b, start, data);
  CHECK(b == "prefix" + a);

  std::string batch_a = "LPCB\x01";
  lp::wire::append_frame(&batch_a, FrameType::kBatch, json{{"proxy_id", "p\"1"}, {"seq", 7}}, {});
  std::string batch_b;
  lp::wire::begin_batch(&batch_b, "p\"1", 7);
  CHECK(batch_a == batch_b);
}
