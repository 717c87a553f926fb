// The log server's DOM-free reading of a capture frame's meta: read_frame_meta must read the
// keys ingest uses exactly as ingest read them from the parsed object.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/capture_wire.h"
#include "log-server/frame_meta.h"

using lp::logsrv::MetaValue;
using lp::logsrv::read_frame_meta;
using nlohmann::json;

namespace {

// What ingest read from the parsed object before (the reference for read_frame_meta).
std::optional<int64_t> dom_int(const json& meta, const char* key) {
  auto it = meta.find(key);
  if (it == meta.end()) return std::nullopt;
  if (it->is_number_unsigned()) {
    uint64_t v = it->get<uint64_t>();
    return v > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(v);
  }
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float()) return static_cast<int64_t>(it->get<double>());
  return std::nullopt;
}
std::optional<std::string> dom_str(const json& meta, const char* key) {
  auto it = meta.find(key);
  if (it == meta.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

}  // namespace

TEST_CASE("read_frame_meta reads each key as ingest read the parsed object") {
  const std::vector<std::string> metas = {
      R"({"id":"x","route":"openai","method":"POST","proxy_path":"/v1","destination":"https://a",)"
      R"("client_ip":"1.2.3.4","started_at":"2025-09-13T02:11:09.123456Z","replay_of":"y"})",
      R"({"route":5,"method":null,"proxy_path":["a"],"destination":{"x":1},"replay_of":false})",
      R"({"route":"a","route":"b","t_us":1,"t_us":"2"})",
      R"({"t_us":-5})",
      R"({"t_us":18446744073709551615})",
      R"({"t_us":9223372036854775807})",
      R"({"t_us":123.9})",
      R"({"t_us":-2.5e3})",
      R"({"t_us":1e30})",
      R"({"t_us":100000000000000000000000})",
      R"({"outcome":"complete","status":200,"error":"boom \"quoted\" \u00e9","request_bytes":12,)"
      R"("response_bytes":0,"timings":{"total_us":5,"first_byte_us":3,"upstream_headers_us":2,)"
      R"("request_forwarded_us":1,"proxy_overhead_us":7.5,"chunks":[1,[2,{"a":null}]],"z":"s"}})",
      R"({"timings":{"total_us":1},"timings":3})",
      R"({"timings":3,"timings":{"total_us":"x","first_byte_us":2,"first_byte_us":4}})",
      R"({"timings":[1,2]})",
      R"({"timings":{}})",
      R"({"timings":{"first_byte_us":3,"request_forwarded_us":1,"total_us":5,"upstream_headers_us":2}})",
      R"({"timings":{"a":1,"a":2}})",
      R"({"timings":{"b":1,"a":2}})",
      R"({"timings":{"a":-0,"b":-5}})",
      R"({"timings":{"a": 1}})",
      R"({"timings":{"a":1}})",
      R"({"timings":{"A":1,"total_us":1234567890123456789012}})",
      R"({"timings":{"total_us":1234567890123456789}})",
      R"({"timings":{"total_us":1.0}})",
      R"({"nested":{"status":7,"route":"no"},"status":"200"})",
      R"({})",
  };
  const char* const kStrings[] = {"route",       "method",    "proxy_path",
                                  "destination", "client_ip", "started_at",
                                  "replay_of",   "outcome",   "error"};
  for (const std::string& text : metas) {
    CAPTURE(text);
    const json dom = json::parse(text);
    auto meta = read_frame_meta(text);
    REQUIRE(meta.has_value());
    auto value = [&](std::string_view key) -> const MetaValue& {
      if (key == "route") return meta->route;
      if (key == "method") return meta->method;
      if (key == "proxy_path") return meta->proxy_path;
      if (key == "destination") return meta->destination;
      if (key == "client_ip") return meta->client_ip;
      if (key == "started_at") return meta->started_at;
      if (key == "replay_of") return meta->replay_of;
      if (key == "outcome") return meta->outcome;
      return meta->error;
    };
    for (const char* key : kStrings) {
      CAPTURE(key);
      CHECK(value(key).opt_str() == dom_str(dom, key));
      CHECK(value(key).str() == dom_str(dom, key).value_or(""));
    }
    CHECK(meta->t_us.opt_int() == dom_int(dom, "t_us"));
    CHECK(meta->status.opt_int() == dom_int(dom, "status"));
    CHECK(meta->request_bytes.opt_int() == dom_int(dom, "request_bytes"));
    CHECK(meta->response_bytes.opt_int() == dom_int(dom, "response_bytes"));
    auto t = dom.find("timings");
    const bool has = t != dom.end() && t->is_object();
    REQUIRE(meta->has_timings == has);
    if (has) {
      CHECK(meta->request_forwarded_us == dom_int(*t, "request_forwarded_us"));
      CHECK(meta->upstream_headers_us == dom_int(*t, "upstream_headers_us"));
      CHECK(meta->first_byte_us == dom_int(*t, "first_byte_us"));
      CHECK(meta->total_us == dom_int(*t, "total_us"));
      CHECK(meta->timings_json == t->dump(-1, ' ', false, json::error_handler_t::replace));
    }
  }
}

TEST_CASE("read_frame_meta refuses what is not one JSON object") {
  for (const char* text : {"", "[]", "5", "{", R"({"a":1} {})", R"({"a":})"}) {
    CAPTURE(text);
    CHECK_FALSE(read_frame_meta(text).has_value());
  }
}
