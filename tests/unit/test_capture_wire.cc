#include "common/capture_wire.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <set>
#include <string>
#include <vector>

using lp::wire::FrameType;
using nlohmann::json;

namespace {

const std::string kId = "0123abcd-4567-4890-a123-456789abcdef";
const std::string kOtherId = "ffffffff-0000-4000-8000-000000000001";

std::string be32(uint32_t v) {
  std::string s(4, '\0');
  s[0] = static_cast<char>(v >> 24);
  s[1] = static_cast<char>(v >> 16);
  s[2] = static_cast<char>(v >> 8);
  s[3] = static_cast<char>(v);
  return s;
}

// A frame built by hand, so malformed lengths and metas can be expressed.
std::string raw_frame(uint8_t type, const std::string& meta, const std::string& data,
                      uint32_t meta_len, uint32_t data_len) {
  return std::string(1, static_cast<char>(type)) + be32(meta_len) + be32(data_len) + meta + data;
}
std::string raw_frame(uint8_t type, const std::string& meta, const std::string& data = "") {
  return raw_frame(type, meta, data, static_cast<uint32_t>(meta.size()),
                   static_cast<uint32_t>(data.size()));
}

std::string preamble(uint8_t version = 1) {
  return std::string("LPCB") + static_cast<char>(version);
}

const std::string kBatchMeta = R"({"proxy_id":"p1","seq":7})";
std::string good_head() {
  return preamble() + raw_frame(1, kBatchMeta);
}
std::string id_meta(const std::string& id) {
  return R"({"id":")" + id + R"("})";
}

// NUL, 0xff, CRLF and a chunked-looking tail: data must come back byte for byte.
std::string binary_bytes() {
  const char raw[] =
      "a\0b\xff\r\n\r\n\x80\xfe"
      "z\0\r\n0\r\n\r\n\xff";
  return std::string(raw, sizeof raw - 1);
}

std::string no_dashes(std::string id) {
  for (char& c : id) {
    if (c == '-') c = '0';
  }
  return id;
}

// decode_batch's message; decode_batch_views must refuse the batch with the same one.
std::string decode_error(const std::string& bytes) {
  std::string error, view_error;
  auto decoded = lp::wire::decode_batch(bytes, &error);
  CHECK_FALSE(decoded.has_value());
  CHECK_FALSE(lp::wire::decode_batch_views(bytes, &view_error).has_value());
  CHECK(view_error == error);
  return error;
}

// Builds a batch with one frame of every type, remembering where each frame ends.
struct SampleBatch {
  std::string bytes;
  std::vector<size_t> frame_ends;  // offset just past each frame, kBatch frame first
  std::vector<lp::wire::Frame> frames;
};

SampleBatch sample_batch() {
  SampleBatch b;
  lp::wire::begin_batch(&b.bytes, "proxy-7f3a", 42);
  b.frame_ends.push_back(b.bytes.size());
  auto add = [&](FrameType type, json meta, std::string data) {
    lp::wire::append_frame(&b.bytes, type, meta, data);
    b.frame_ends.push_back(b.bytes.size());
    b.frames.push_back({type, std::move(meta), std::move(data)});
  };
  add(FrameType::kBegin,
      {{"id", kId},
       {"route", "lmstudio"},
       {"method", "POST"},
       {"proxy_path", "/lmstudio/v1/chat/completions?x=1"},
       {"destination", "http://127.0.0.1:1234/v1/chat/completions?x=1"},
       {"client_ip", "127.0.0.1"},
       {"started_at", "2024-05-01T10:20:30.123456Z"}},
      "");
  add(FrameType::kRequestHead, {{"id", kId}},
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Proxy-Path: /lmstudio/v1\r\n\r\n");
  add(FrameType::kRequestBody, {{"id", kId}}, binary_bytes());
  add(FrameType::kRequestBody, {{"id", kId}}, "");
  add(FrameType::kResponseHead, {{"id", kId}, {"t_us", 1500}},
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
  add(FrameType::kResponseBody, {{"id", kId}, {"t_us", 2500}}, "data: {}\n\n");
  add(FrameType::kResponseBody, {{"id", kOtherId}, {"t_us", 1}}, std::string(1, '\0'));
  add(FrameType::kEnd,
      {{"id", kId},
       {"outcome", "complete"},
       {"status", 200},
       {"request_bytes", 11},
       {"response_bytes", 10},
       {"timings",
        {{"request_forwarded_us", 10},
         {"upstream_headers_us", 1500},
         {"first_byte_us", 2500},
         {"total_us", 3000}}}},
      "");
  return b;
}

}  // namespace

TEST_CASE("frame_type_name names every type") {
  struct Case {
    FrameType type;
    const char* name;
  };
  const Case cases[] = {
      {FrameType::kBatch, "batch"},
      {FrameType::kBegin, "begin"},
      {FrameType::kRequestHead, "request_head"},
      {FrameType::kRequestBody, "request_body"},
      {FrameType::kResponseHead, "response_head"},
      {FrameType::kResponseBody, "response_body"},
      {FrameType::kEnd, "end"},
  };
  for (const auto& c : cases) CHECK(lp::wire::frame_type_name(c.type) == c.name);
  CHECK(lp::wire::frame_type_name(static_cast<FrameType>(9)) == "unknown");
}

TEST_CASE("encoding layout: magic, version, type byte, big-endian lengths") {
  std::string out;
  lp::wire::begin_batch(&out, "p", 1);
  std::string meta = R"({"proxy_id":"p","seq":1})";
  CHECK(out == preamble() + raw_frame(1, meta));

  std::string frame;
  std::string data(0x010203, 'x');
  lp::wire::append_frame(&frame, FrameType::kRequestBody, json{{"id", kId}}, data);
  REQUIRE(frame.size() == 9 + id_meta(kId).size() + data.size());
  CHECK(static_cast<uint8_t>(frame[0]) == 4);
  CHECK(frame.substr(1, 4) == be32(static_cast<uint32_t>(id_meta(kId).size())));
  CHECK(frame.substr(5, 4) == std::string("\x00\x01\x02\x03", 4));
  CHECK(frame.substr(9, id_meta(kId).size()) == id_meta(kId));
}

TEST_CASE("round trip of a batch with every frame type") {
  SampleBatch b = sample_batch();
  std::string error;
  auto decoded = lp::wire::decode_batch(b.bytes, &error);
  REQUIRE_MESSAGE(decoded.has_value(), error);
  CHECK(decoded->proxy_id == "proxy-7f3a");
  CHECK(decoded->seq == 42);
  REQUIRE(decoded->frames.size() == b.frames.size());
  std::set<FrameType> seen;
  for (size_t i = 0; i < b.frames.size(); ++i) {
    CAPTURE(i);
    CHECK(decoded->frames[i].type == b.frames[i].type);
    CHECK(decoded->frames[i].meta == b.frames[i].meta);
    CHECK(decoded->frames[i].data == b.frames[i].data);
    seen.insert(decoded->frames[i].type);
  }
  CHECK(seen.size() == 6);  // every type but kBatch, which is not returned as a frame
  CHECK(decoded->frames[2].data.size() == binary_bytes().size());
  CHECK(decoded->frames[2].data.find('\0') != std::string::npos);
  CHECK(decoded->frames[3].data.empty());
}

TEST_CASE("edge values that must be accepted") {
  struct Case {
    const char* name;
    std::string proxy_id;
    uint64_t seq;
  };
  const Case cases[] = {
      {"seq 0", "p", 0},
      {"seq max", "p", UINT64_MAX},
      {"proxy_id 128 chars", std::string(128, 'a'), 5},
      {"proxy_id 1 char", "x", 5},
      {"proxy_id unicode", "pr\xc3\xb6xy", 5},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    std::string bytes;
    lp::wire::begin_batch(&bytes, c.proxy_id, c.seq);
    std::string error;
    auto decoded = lp::wire::decode_batch(bytes, &error);
    REQUIRE_MESSAGE(decoded.has_value(), error);
    CHECK(decoded->proxy_id == c.proxy_id);
    CHECK(decoded->seq == c.seq);
    CHECK(decoded->frames.empty());
  }
}

TEST_CASE("meta of exactly kMaxMetaBytes and data of exactly kMaxDataBytes are accepted") {
  std::string meta = id_meta(kId);
  meta.insert(meta.size() - 1, std::string(lp::wire::kMaxMetaBytes - meta.size(), ' '));
  REQUIRE(meta.size() == lp::wire::kMaxMetaBytes);
  std::string data(lp::wire::kMaxDataBytes, '\xff');
  std::string bytes = good_head() + raw_frame(4, meta, data);
  std::string error;
  auto decoded = lp::wire::decode_batch(bytes, &error);
  REQUIRE_MESSAGE(decoded.has_value(), error);
  REQUIRE(decoded->frames.size() == 1);
  CHECK(decoded->frames[0].data.size() == lp::wire::kMaxDataBytes);
  CHECK(decoded->frames[0].meta["id"] == kId);
}

TEST_CASE("invalid UTF-8 in a meta string encodes without throwing and still decodes") {
  std::string bytes;
  lp::wire::begin_batch(&bytes, "bad\xff\xfeproxy", 1);
  json meta = {{"id", kId}, {"route", "x\xc3"}, {"client_ip", std::string("\x80\x00y", 3)}};
  CHECK_NOTHROW(lp::wire::append_frame(&bytes, FrameType::kBegin, meta, "\xff"));
  std::string error;
  auto decoded = lp::wire::decode_batch(bytes, &error);
  REQUIRE_MESSAGE(decoded.has_value(), error);
  const std::string kReplacement = "\xef\xbf\xbd";  // U+FFFD
  CHECK(decoded->proxy_id == "bad" + kReplacement + kReplacement + "proxy");
  REQUIRE(decoded->frames.size() == 1);
  CHECK(decoded->frames[0].meta["route"] == "x" + kReplacement);
  CHECK(decoded->frames[0].meta["client_ip"] == kReplacement + std::string("\0y", 2));
  CHECK(decoded->frames[0].data == "\xff");
}

TEST_CASE("every prefix of a valid batch fails with 'truncated' unless it ends on a frame") {
  // A batch is self-delimiting only by its total length (the POST body, the spool file), so a
  // cut exactly between two frames (after the batch frame) is a shorter valid batch; every
  // other cut must be reported as truncated, without reading past the end.
  SampleBatch b = sample_batch();
  std::set<size_t> boundaries(b.frame_ends.begin(), b.frame_ends.end());
  size_t truncated = 0, shorter = 0;
  for (size_t len = 0; len < b.bytes.size(); ++len) {
    CAPTURE(len);
    // A copy of exactly `len` bytes, so an over-read is caught by ASan.
    std::string prefix = b.bytes.substr(0, len);
    std::string error;
    auto decoded = lp::wire::decode_batch(prefix, &error);
    if (boundaries.count(len)) {
      REQUIRE_MESSAGE(decoded.has_value(), error);
      size_t frames = static_cast<size_t>(std::distance(
          b.frame_ends.begin(), std::find(b.frame_ends.begin(), b.frame_ends.end(), len)));
      CHECK(decoded->frames.size() == frames);
      ++shorter;
    } else {
      CHECK_FALSE(decoded.has_value());
      CHECK_MESSAGE(error.find("truncated") != std::string::npos, error);
      ++truncated;
    }
  }
  CHECK(shorter == b.frame_ends.size() - 1);
  CHECK(truncated == b.bytes.size() - shorter);
  std::string error;
  CHECK(lp::wire::decode_batch(b.bytes, &error).has_value());
}

TEST_CASE("malformed batches are rejected with a message naming the problem") {
  const std::string head = good_head();
  const size_t f1 = head.size();  // offset of frame 1
  const std::string id_frame = raw_frame(2, id_meta(kId));
  const std::string at1 = "frame 1 at byte " + std::to_string(f1) + ": ";
  const std::string at2 = "frame 2 at byte " + std::to_string(f1 + id_frame.size()) + ": ";
  std::string nested(5000, '[');
  nested += std::string(5000, ']');

  struct Case {
    const char* name;
    std::string bytes;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"empty", "", "truncated"},
      {"bad magic", "LPCX" + head.substr(4), "bad magic at byte 0"},
      {"bad magic short", "X", "bad magic"},
      {"http body", "{\"proxy_id\":\"p\"}", "bad magic"},
      {"version 2", preamble(2) + head.substr(5), "unsupported version 2 at byte 4"},
      {"version 0", preamble(0) + head.substr(5), "unsupported version 0"},
      {"preamble only", preamble(), "truncated"},
      {"unknown type 0 first", preamble() + raw_frame(0, kBatchMeta),
       "frame 0 at byte 5: unknown frame type 0"},
      {"unknown type 8 later", head + raw_frame(8, id_meta(kId)), at1 + "unknown frame type 8"},
      {"unknown type 255 later", head + id_frame + raw_frame(255, id_meta(kId)),
       at2 + "unknown frame type 255"},
      {"meta length over max", head + raw_frame(2, "", "", 65537, 0),
       at1 + "meta length 65537 exceeds 65536"},
      {"meta length u32 max", head + raw_frame(2, "", "", 0xffffffffu, 0),
       at1 + "meta length 4294967295 exceeds 65536"},
      {"data length over max", head + raw_frame(4, id_meta(kId), "", 40, 16777217),
       at1 + "data length 16777217 exceeds 16777216"},
      {"data length u32 max", head + raw_frame(4, id_meta(kId), "", 40, 0xffffffffu),
       "data length 4294967295 exceeds"},
      {"meta longer than input", head + raw_frame(2, id_meta(kId), "", 1000, 0),
       at1 + "truncated frame"},
      {"data longer than input",
       head + raw_frame(4, id_meta(kId), "abc", static_cast<uint32_t>(id_meta(kId).size()), 4),
       at1 + "truncated frame"},
      {"meta not JSON", head + raw_frame(2, "{\"id\":"), at1 + "meta is not valid JSON"},
      {"meta empty", head + raw_frame(2, ""), at1 + "meta is not valid JSON"},
      {"meta two values", head + raw_frame(2, id_meta(kId) + "{}"), "meta is not valid JSON"},
      {"meta raw invalid UTF-8", head + raw_frame(2, "{\"id\":\"\xff\"}"),
       "meta is not valid JSON"},
      {"meta with comment", head + raw_frame(2, "/*c*/" + id_meta(kId)), "meta is not valid JSON"},
      {"meta JSON array", head + raw_frame(2, "[\"" + kId + "\"]"),
       at1 + "meta is not a JSON object"},
      {"meta JSON null", head + raw_frame(2, "null"), "meta is not a JSON object"},
      {"meta JSON string", head + raw_frame(2, "\"id\""), "meta is not a JSON object"},
      {"meta deeply nested", head + raw_frame(2, nested), "meta is not a JSON object"},
      {"batch meta array", preamble() + raw_frame(1, "[1]"),
       "frame 0 at byte 5: meta is not a JSON object"},
      {"missing proxy_id", preamble() + raw_frame(1, R"({"seq":1})"),
       "frame 0 at byte 5: batch frame lacks a string proxy_id"},
      {"proxy_id number", preamble() + raw_frame(1, R"({"proxy_id":5,"seq":1})"),
       "lacks a string proxy_id"},
      {"proxy_id empty", preamble() + raw_frame(1, R"({"proxy_id":"","seq":1})"),
       "proxy_id must be 1..128 characters, got 0"},
      {"proxy_id 129",
       preamble() + raw_frame(1, json{{"proxy_id", std::string(129, 'p')}, {"seq", 1}}.dump()),
       "proxy_id must be 1..128 characters, got 129"},
      {"missing seq", preamble() + raw_frame(1, R"({"proxy_id":"p"})"),
       "frame 0 at byte 5: batch frame lacks an unsigned integer seq"},
      {"seq negative", preamble() + raw_frame(1, R"({"proxy_id":"p","seq":-1})"),
       "lacks an unsigned integer seq"},
      {"seq string", preamble() + raw_frame(1, R"({"proxy_id":"p","seq":"1"})"),
       "lacks an unsigned integer seq"},
      {"seq float", preamble() + raw_frame(1, R"({"proxy_id":"p","seq":1.5})"),
       "lacks an unsigned integer seq"},
      {"seq too big", preamble() + raw_frame(1, R"({"proxy_id":"p","seq":18446744073709551616})"),
       "lacks an unsigned integer seq"},
      {"first frame begin", preamble() + id_frame,
       "frame 0 at byte 5: first frame is begin, expected batch"},
      {"first frame end", preamble() + raw_frame(7, id_meta(kId)), "first frame is end"},
      {"second batch frame", head + id_frame + raw_frame(1, kBatchMeta),
       at2 + "unexpected batch frame"},
      {"missing id", head + raw_frame(3, R"({"t_us":1})"), at1 + "meta lacks a string id"},
      {"id number", head + raw_frame(3, R"({"id":12345})"), at1 + "meta lacks a string id"},
      {"id null", head + raw_frame(3, R"({"id":null})"), "meta lacks a string id"},
      {"id empty", head + raw_frame(3, id_meta("")), at1 + "id is not a lowercase UUID"},
      {"id short", head + raw_frame(3, id_meta(kId.substr(0, 35))), "id is not a lowercase UUID"},
      {"id long", head + raw_frame(3, id_meta(kId + "0")), "id is not a lowercase UUID"},
      {"id uppercase", head + raw_frame(3, id_meta("0123ABCD-4567-4890-a123-456789abcdef")),
       "id is not a lowercase UUID"},
      {"id non-hex", head + raw_frame(3, id_meta("0123abcg-4567-4890-a123-456789abcdef")),
       "id is not a lowercase UUID"},
      {"id dash moved", head + raw_frame(3, id_meta("0123abc-d4567-4890-a123-456789abcdef")),
       "id is not a lowercase UUID"},
      {"id no dashes", head + raw_frame(3, id_meta(no_dashes(kId))), "id is not a lowercase UUID"},
      {"id in later frame bad", head + id_frame + raw_frame(7, id_meta("x")),
       at2 + "id is not a lowercase UUID"},
      {"trailing 1 byte", head + id_frame + "\x02", at2 + "truncated frame header"},
      {"trailing 8 bytes", head + id_frame + std::string(8, '\0'), at2 + "truncated frame header"},
      {"trailing garbage after batch frame", head + "xyz", at1 + "truncated frame header"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    std::string error = decode_error(c.bytes);
    CHECK_MESSAGE(error.find(c.expect) != std::string::npos, "error: " << error);
  }
}

TEST_CASE("decode_batch_views accepts and rejects what decode_batch does, with the same message") {
  const std::string id = R"("id":")" + kId + R"(")";
  const std::vector<std::string> metas = {
      "{" + id + "}",
      "{" + id + R"(,"t_us":5})",
      R"({"a":[1,{"id":3}],)" + id + "}",
      "{" + id + R"(,"id":7})",  // the last id is not a string
      R"({"id":7,)" + id + "}",  // the last one is
      R"({"id":"0123ABCD-4567-4890-a123-456789abcdef"})",
      R"({"id":"\u0030123abcd-4567-4890-a123-456789abcdef"})",  // escaped, same id
      R"({"x":{"id":")" + kId + R"("}})",                       // nested only
      "[1,2]",
      "\"" + kId + "\"",
      "{" + id + ",}",
      "{" + id + "} x",
      "{" + id + R"(,"s":"\ud800"})",  // lone surrogate
      "{" + id + ",\"s\":\"\xff\"}",   // invalid UTF-8
      "{" + id + R"(,"n":1e999})",     // overflow
      "{" + id + R"(,"n":01})",
      "\xef\xbb\xbf{" + id + "}",  // byte order mark
      " \t\r\n{" + id + "} \n",
      "",
      "{" + id + R"(,"deep":[[[[[[[[[[{}]]]]]]]]]]})",
  };
  for (const std::string& meta : metas) {
    for (uint8_t type : {2, 3, 6, 7, 1}) {
      std::string bytes =
          good_head() + raw_frame(type, meta, "data") + raw_frame(4, "{" + id + "}", "x");
      CAPTURE(meta);
      CAPTURE(static_cast<int>(type));
      std::string dom_error, view_error;
      auto dom = lp::wire::decode_batch(bytes, &dom_error);
      auto views = lp::wire::decode_batch_views(bytes, &view_error);
      REQUIRE(dom.has_value() == views.has_value());
      CHECK(dom_error == view_error);
      if (!dom) continue;
      CHECK(views->frames.empty());
      CHECK(views->proxy_id == dom->proxy_id);
      CHECK(views->seq == dom->seq);
      REQUIRE(views->views.size() == dom->frames.size());
      for (size_t i = 0; i < dom->frames.size(); ++i) {
        const auto& v = views->views[i];
        CHECK(v.type == dom->frames[i].type);
        CHECK(v.id() == dom->frames[i].meta["id"].get<std::string>());
        CHECK(v.data == dom->frames[i].data);
        CHECK(json::parse(v.meta) == dom->frames[i].meta);
      }
    }
  }
}

TEST_CASE("a batch larger than kMaxBatchBytes is rejected before it is parsed") {
  std::string bytes = good_head();
  bytes.resize(lp::wire::kMaxBatchBytes + 1, '\0');
  CHECK(decode_error(bytes).find("batch of 67108865 bytes exceeds 67108864") != std::string::npos);
}

TEST_CASE("decode_batch accepts a null error pointer") {
  CHECK_FALSE(lp::wire::decode_batch("nope", nullptr).has_value());
  CHECK(lp::wire::decode_batch(good_head(), nullptr).has_value());
}
