// Fuzz target: rebuilding a stored request for `logging-proxy replay` (lp::build_replay_request)
// and the --header argument parser (lp::parse_header_arg).
//
// Input: a stored request message as the log server serves it (head as forwarded, with
// X-Proxy-Path, then the body). Its first line is also tried as a --header argument and, when
// valid, used as an override.
// Checked beyond "no crash": a replay that is built is a request the proxy itself accepts
// (parse_request_head with the proxy's default limits widened to the stored size, framing
// without error, the body length as Content-Length), with exactly one Host and one X-Replay-Of,
// no masked credential left, and its body a suffix of the stored message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "common/http_message.h"
#include "fuzz/fuzz_check.h"
#include "proxy/replay_request.h"

namespace {

size_t count(const lp::HeaderList& headers, std::string_view name) {
  size_t n = 0;
  for (const auto& h : headers) n += lp::iequals(h.name, name);
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view stored(reinterpret_cast<const char*>(data), size);

  lp::ReplayOptions options;
  options.original_id = "0123abcd-0000-4000-8000-00000000beef";
  options.proxy_authority = "127.0.0.1:5601";
  options.redacted_names = {"Authorization", "X-Api-Key", "Cookie"};
  options.overrides.push_back({"X-Api-Key", "replacement-key"});
  std::string_view first_line = stored.substr(0, stored.find('\n'));
  if (auto h = lp::parse_header_arg(first_line)) {
    FUZZ_CHECK(!h->name.empty());
    options.overrides.push_back(*h);
  }

  std::string error;
  auto replay = lp::build_replay_request(stored, options, &error);
  if (!replay) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  const lp::RequestHead& head = replay->head;
  FUZZ_CHECK(!head.target.empty() && head.target.front() == '/');
  FUZZ_CHECK(replay->body.size() <= stored.size());
  FUZZ_CHECK(stored.substr(stored.size() - replay->body.size()) == replay->body);
  FUZZ_CHECK(count(head.headers, "Host") == 1);
  FUZZ_CHECK(count(head.headers, "X-Replay-Of") == 1);
  // A masked credential is dropped (unless overridden: an override is sent as given).
  for (const auto& h : head.headers) {
    if (!lp::iequals(h.name, "Authorization") && !lp::iequals(h.name, "Cookie")) continue;
    if (count(options.overrides, h.name) > 0) continue;
    FUZZ_CHECK(h.value.find("****") == std::string::npos);
  }

  // What replay sends must be a request the proxy accepts and frames as sent.
  std::string bytes;
  lp::append_request_head(&bytes, head);
  lp::HeadLimits limits;
  limits.max_head_bytes = bytes.size() + 64 * 1024;
  limits.max_request_line = bytes.size() + 16 * 1024;
  limits.max_headers = 10000;
  lp::RequestHead parsed;
  lp::ParseResult r = lp::parse_request_head(bytes, limits, &parsed);
  if (r.state != lp::ParseResult::State::kDone) {
    std::fprintf(stderr, "the proxy would reject the replay: %d %s\n%s\n", r.error_status,
                 r.error.c_str(), bytes.c_str());
  }
  FUZZ_CHECK(r.state == lp::ParseResult::State::kDone && r.consumed == bytes.size());
  lp::FramingResult f = lp::request_framing(parsed);
  FUZZ_CHECK(f.error_status == 0);
  if (!replay->body.empty()) {
    FUZZ_CHECK(f.framing.kind == lp::BodyFraming::Kind::kLength &&
               f.framing.length == replay->body.size());
  }
  return 0;
}
