// Fuzz target: the capture batch decoder (lp::wire::decode_batch), which the log server runs on
// every POST /ingest body and the proxy on every spooled file.
//
// Invariants checked beyond "no crash": a decoded batch re-encodes (append_frame) to bytes that
// decode to the same proxy id, sequence number and frames, and a rejected batch always carries
// a message. Differentially: the proxy's JSON string writer (common/json_writer.h) escapes the
// input bytes exactly as nlohmann's dump does, invalid UTF-8 included.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/capture_wire.h"
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
  std::string error;
  auto batch = lp::wire::decode_batch(bytes, &error);
  if (!batch) {
    FUZZ_CHECK(!error.empty());
    return 0;
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
