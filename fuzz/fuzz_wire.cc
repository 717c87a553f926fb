// Fuzz target: the capture batch decoder (lp::wire::decode_batch), which the log server runs on
// every POST /ingest body and the proxy on every spooled file.
//
// Invariants checked beyond "no crash": a decoded batch re-encodes (append_frame) to bytes that
// decode to the same proxy id, sequence number and frames, and a rejected batch always carries
// a message. Differentially: the proxy's JSON string writer (common/json_writer.h) escapes the
// input bytes exactly as nlohmann's dump does, invalid UTF-8 included; the log server's
// decoder without JSON objects (decode_batch_views, common/json_scan.h) accepts and rejects what
// decode_batch does, with the same message and the same frames, and scan_json_object takes the
// input as JSON exactly when nlohmann::json::parse does, with the same top-level members.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/capture_wire.h"
#include "common/json_scan.h"
#include "common/json_writer.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  {
    std::string_view s = bytes.substr(0, 4096);
    std::string ours;
    lp::append_json_string(&ours, s);
    FUZZ_CHECK(ours == nlohmann::json(std::string(s))
                           .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  {
    std::string_view s = bytes.substr(0, 4096);
    nlohmann::json dom = nlohmann::json::parse(s.begin(), s.end(), nullptr, false);
    nlohmann::json ours = nlohmann::json::object();
    bool is_object = false;
    bool valid =
        lp::scan_json_object(s, &is_object, [&](std::string_view key, const lp::JsonMember& m) {
          nlohmann::json v = nlohmann::json::parse(m.raw);
          if (m.kind == lp::JsonMember::Kind::kString) FUZZ_CHECK(v == std::string(m.string));
          if (m.kind == lp::JsonMember::Kind::kInteger) FUZZ_CHECK(v == m.integer);
          if (m.kind == lp::JsonMember::Kind::kUnsigned) FUZZ_CHECK(v == m.unsigned_integer);
          if (m.kind == lp::JsonMember::Kind::kFloat) FUZZ_CHECK(v == m.floating);
          ours[std::string(key)] = std::move(v);
        });
    FUZZ_CHECK(valid == !dom.is_discarded());
    if (valid) FUZZ_CHECK(is_object == dom.is_object());
    if (valid && is_object) FUZZ_CHECK(ours == dom);
  }
  std::string error;
  auto batch = lp::wire::decode_batch(bytes, &error);
  std::string view_error;
  auto views = lp::wire::decode_batch_views(bytes, &view_error);
  FUZZ_CHECK(batch.has_value() == views.has_value() && error == view_error);
  if (!batch) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  FUZZ_CHECK(views->proxy_id == batch->proxy_id && views->seq == batch->seq);
  FUZZ_CHECK(views->views.size() == batch->frames.size());
  for (size_t i = 0; i < batch->frames.size(); ++i) {
    const auto& v = views->views[i];
    const auto& f = batch->frames[i];
    FUZZ_CHECK(v.type == f.type && v.data == f.data && v.id() == f.meta["id"].get<std::string>());
    FUZZ_CHECK(nlohmann::json::parse(v.meta) == f.meta);
  }
  std::string again;
  lp::wire::begin_batch(&again, batch->proxy_id, batch->seq);
  for (const auto& f : batch->frames) lp::wire::append_frame(&again, f.type, f.meta, f.data);
  std::string error2;
  auto round = lp::wire::decode_batch(again, &error2);
  FUZZ_CHECK(round.has_value());
  FUZZ_CHECK(round->proxy_id == batch->proxy_id && round->seq == batch->seq);
  FUZZ_CHECK(round->frames.size() == batch->frames.size());
  for (size_t i = 0; i < batch->frames.size(); ++i) {
    const auto& a = batch->frames[i];
    const auto& b = round->frames[i];
    FUZZ_CHECK(a.type == b.type && a.data == b.data && a.meta == b.meta);
    FUZZ_CHECK(!lp::wire::frame_type_name(a.type).empty());
  }
  return 0;
}
