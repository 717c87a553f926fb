// Fuzz target: the proxy's HTTP/1.1 codec (proxy/http_message.h): parse_request_head,
// parse_response_head, request_framing, response_framing and ChunkedDecoder, on the same input;
// requests also with the forward proxy's forms, whose targets go through parse_connect_target /
// parse_absolute_target.
//
// Checked beyond "no crash":
//  - a parsed head consumes at most the input, and re-serialised (append_*_head) parses back to
//    the same head: what the proxy forwards is what it understood;
//  - the request parser does not depend on how TCP split the bytes: every prefix shorter than a
//    complete head is "incomplete" (never an error, never done), as the proxy re-parses its
//    growing buffer after each read;
//  - ChunkedDecoder gives the same data, consumed count, error and end state whether the input
//    is fed at once or in small pieces; what BodyEncoder chunks decodes back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/http_message.h"
#include "fuzz/fuzz_check.h"
#include "proxy/body_stream.h"
#include "proxy/forward_target.h"

namespace {

using State = lp::ParseResult::State;

bool same_headers(const lp::HeaderList& a, const lp::HeaderList& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].value != b[i].value) return false;
  }
  return true;
}

// Small limits so that the limit paths (414, 431, header count) are reachable.
lp::HeadLimits small_limits() {
  lp::HeadLimits l;
  l.max_head_bytes = 2048;
  l.max_request_line = 512;
  l.max_headers = 20;
  return l;
}

lp::HeadLimits roomy_limits() {
  lp::HeadLimits l;
  l.max_head_bytes = 1 << 20;
  l.max_request_line = 1 << 20;
  l.max_headers = 1000;
  return l;
}

void check_request(std::string_view in, bool proxy_forms) {
  lp::HeadLimits limits = small_limits();
  limits.proxy_forms = proxy_forms;
  lp::RequestHead head;
  lp::ParseResult r = lp::parse_request_head(in, limits, &head);
  if (r.state == State::kError) {
    FUZZ_CHECK(r.error_status >= 400 && r.error_status <= 505 && !r.error.empty());
    return;
  }
  if (r.state != State::kDone) return;
  FUZZ_CHECK(r.consumed > 0 && r.consumed <= in.size());
  FUZZ_CHECK(!head.method.empty() && !head.target.empty());
  FUZZ_CHECK(head.minor_version == 0 || head.minor_version == 1);

  // Prefixes: incomplete, whatever the split. Byte by byte for short heads, else a sample.
  const size_t step = r.consumed <= 256 ? 1 : r.consumed / 61 + 1;
  for (size_t n = 0; n < r.consumed; n += step) {
    lp::RequestHead partial;
    lp::ParseResult pr = lp::parse_request_head(in.substr(0, n), limits, &partial);
    FUZZ_CHECK(pr.state == State::kIncomplete);
  }
  {
    lp::RequestHead exact;
    lp::ParseResult er = lp::parse_request_head(in.substr(0, r.consumed), limits, &exact);
    FUZZ_CHECK(er.state == State::kDone && er.consumed == r.consumed);
  }

  if (proxy_forms && (head.method == "CONNECT" || head.target.front() != '/')) {
    std::string error;
    auto t = head.method == "CONNECT" ? lp::parse_connect_target(head.target, &error)
                                      : lp::parse_absolute_target(head.target, &error);
    if (t) {
      FUZZ_CHECK(!t->host.empty() && t->port != 0 && !t->origin().empty());
      FUZZ_CHECK(head.method == "CONNECT" || t->origin_form.front() == '/');
    } else if (head.target != "*") {
      FUZZ_CHECK(!error.empty());
    }
  }

  // Round trip through the serialiser the forwarder uses.
  std::string bytes;
  lp::append_request_head(&bytes, head);
  lp::RequestHead again;
  lp::HeadLimits roomy = roomy_limits();
  roomy.proxy_forms = proxy_forms;
  lp::ParseResult rr = lp::parse_request_head(bytes, roomy, &again);
  FUZZ_CHECK(rr.state == State::kDone && rr.consumed == bytes.size());
  FUZZ_CHECK(again.method == head.method && again.target == head.target &&
             again.minor_version == head.minor_version &&
             same_headers(again.headers, head.headers));
  (void)head.path();
  (void)head.query();

  lp::FramingResult f = lp::request_framing(head);
  if (f.error_status != 0) {
    FUZZ_CHECK(f.error_status == 400 || f.error_status == 501);
    FUZZ_CHECK(!f.error.empty());
    return;
  }
  // The body that follows: run it through the chunked decoder when the request says so.
  if (f.framing.kind == lp::BodyFraming::Kind::kChunked) {
    lp::ChunkedDecoder dec;
    std::string body;
    auto res = dec.feed(in.substr(r.consumed), [&](std::string_view d) { body.append(d); });
    FUZZ_CHECK(res.consumed <= in.size() - r.consumed);
  }
}

void check_response(std::string_view in) {
  lp::ResponseHead head;
  lp::ParseResult r = lp::parse_response_head(in, small_limits(), &head);
  if (r.state == State::kError) {
    FUZZ_CHECK(r.error_status == 502 && !r.error.empty());
    return;
  }
  if (r.state != State::kDone) return;
  FUZZ_CHECK(r.consumed > 0 && r.consumed <= in.size());
  FUZZ_CHECK(head.status >= 100 && head.status <= 599);
  std::string bytes;
  lp::append_response_head(&bytes, head);
  lp::ResponseHead again;
  lp::ParseResult rr = lp::parse_response_head(bytes, roomy_limits(), &again);
  FUZZ_CHECK(rr.state == State::kDone && rr.consumed == bytes.size());
  FUZZ_CHECK(again.status == head.status && again.reason == head.reason &&
             again.minor_version == head.minor_version &&
             same_headers(again.headers, head.headers));
  for (std::string_view method : {"GET", "HEAD", "POST"}) {
    lp::FramingResult f = lp::response_framing(method, head);
    if (f.error_status != 0) FUZZ_CHECK(f.error_status == 502 && !f.error.empty());
  }
}

struct Decoded {
  std::string data;
  size_t consumed = 0;
  bool error = false;
  bool done = false;
};

// Feeds `in` in pieces of `piece` bytes (0: all at once), the way BodyReader does.
Decoded decode_chunked(std::string_view in, size_t piece) {
  lp::ChunkedDecoder dec;
  Decoded out;
  size_t pos = 0;
  while (pos < in.size() && !dec.done()) {
    size_t n = piece == 0 ? in.size() - pos : std::min(piece, in.size() - pos);
    auto res = dec.feed(in.substr(pos, n), [&](std::string_view d) { out.data.append(d); });
    FUZZ_CHECK(res.consumed <= n);
    pos += res.consumed;
    if (res.error) {
      FUZZ_CHECK(!res.message.empty());
      out.error = true;
      break;
    }
    FUZZ_CHECK(res.consumed == n || dec.done());
  }
  out.consumed = pos;
  out.done = dec.done();
  return out;
}

void check_chunked(std::string_view in) {
  Decoded whole = decode_chunked(in, 0);
  for (size_t piece : {size_t{1}, size_t{3}, size_t{17}}) {
    Decoded split = decode_chunked(in, piece);
    FUZZ_CHECK(split.data == whole.data && split.consumed == whole.consumed &&
               split.error == whole.error && split.done == whole.done);
  }
  FUZZ_CHECK(whole.data.size() <= in.size());

  // Encoder round trip: the input as body bytes, chunked in uneven pieces, then decoded.
  lp::BodyFraming chunked;
  chunked.kind = lp::BodyFraming::Kind::kChunked;
  lp::BodyEncoder enc(chunked);
  std::string wire;
  size_t pos = 0;
  for (size_t k = 1; pos < in.size(); ++k) {
    size_t n = std::min(in.size() - pos, k * 7);
    enc.append(&wire, in.substr(pos, n));
    pos += n;
  }
  enc.finish(&wire);
  Decoded back = decode_chunked(wire, 0);
  FUZZ_CHECK(!back.error && back.done && back.consumed == wire.size() && back.data == in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  check_request(in, false);
  check_request(in, true);
  check_response(in);
  check_chunked(in);
  return 0;
}
