// Fuzz target: the SSE parser (reading::SseParser), which the log server runs on every captured
// text/event-stream body.
//
// Invariants checked beyond "no crash": the events, comment count, retry, overflow flag and
// finish() result do not depend on how the bytes were split into feeds (whole, at three split
// points taken from the input, and byte by byte for short inputs); no event's data exceeds the
// bound; events() counts exactly the events delivered.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "log-server/reading/sse.h"

namespace {

using lp::logsrv::reading::SseEvent;
using lp::logsrv::reading::SseParser;

struct Outcome {
  std::vector<std::string> events;  // type, data and id of each event, NUL-joined
  uint64_t comments = 0;
  std::optional<uint64_t> retry;
  bool overflowed = false;
  bool cut = false;
  bool operator==(const Outcome&) const = default;
};

Outcome run(std::string_view input, const std::vector<size_t>& cuts, size_t max) {
  SseParser p(max);
  Outcome o;
  const SseParser::OnEvent on = [&o, max](const SseEvent& e) {
    FUZZ_CHECK(e.data.size() <= max);
    FUZZ_CHECK(!e.type.empty());
    o.events.push_back(e.type + '\0' + e.data + '\0' + e.last_id);
  };
  size_t at = 0;
  for (size_t cut : cuts) {
    p.feed(input.substr(at, cut - at), on);
    at = cut;
  }
  p.feed(input.substr(at), on);
  o.cut = p.finish();
  o.comments = p.comments();
  o.retry = p.retry_ms();
  o.overflowed = p.overflowed();
  FUZZ_CHECK(p.events() == o.events.size());
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte picks the bound: mostly generous, sometimes small enough to overflow.
  const size_t max = data[0] < 64 ? 16 + data[0] : 16 * 1024 * 1024;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  const Outcome whole = run(input, {}, max);
  const size_t n = input.size();
  // Split points derived from the input so the fuzzer can steer them onto CR/LF and the BOM.
  size_t a = n == 0 ? 0 : (size * 7919 + data[0]) % (n + 1);
  size_t b = n == 0 ? 0 : (a + 1 + data[size - 1]) % (n + 1);
  if (a > b) std::swap(a, b);
  const size_t c = (b + n) / 2;
  FUZZ_CHECK(run(input, {a, b, c}, max) == whole);
  FUZZ_CHECK(run(input, {std::min<size_t>(1, n), std::min<size_t>(2, n)}, max) == whole);
  if (n <= 512) {
    std::vector<size_t> every;
    for (size_t i = 1; i < n; ++i) every.push_back(i);
    FUZZ_CHECK(run(input, every, max) == whole);
  }
  return 0;
}
