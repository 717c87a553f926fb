// Fuzz target: the body decoder (reading::BodyDecoder), which the log server runs on every
// captured body with a Content-Encoding: gzip, x-gzip, deflate, br, zstd and stacks of them.
//
// Input: byte 0 picks the coding stack (low 4 bits) and max_output (high bits); the rest is the
// encoded body. Invariants checked beyond "no crash":
// - the sink never receives more than max_output bytes in total, nor a piece over kDecodeChunk,
//   and output_bytes() counts exactly what it received;
// - success and failure do not depend on how the body is split into feeds (whole, at split
//   points derived from the input, byte by byte for short inputs); on success the output is
//   identical, on failure one output is a prefix of the other (decoded bytes are what they are,
//   only how far decoding got before the failure may differ);
// - a failure always has a message, a success never; only known codings are used, so
//   kUnknownCoding never happens.
// - differentially, for the stacks without br: the body bytes taken as plain text, encoded
//   here with zlib/libzstd, decode back to themselves under every split.
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "log-server/reading/decode.h"

namespace {

using lp::logsrv::reading::BodyDecoder;
using lp::logsrv::reading::DecodeStatus;
using lp::logsrv::reading::kDecodeChunk;
using Codings = std::vector<std::string>;

const Codings kStacks[16] = {
    {"gzip"},
    {"x-gzip"},
    {"deflate"},
    {"br"},
    {"zstd"},
    {},
    {"gzip", "br"},
    {"br", "gzip"},
    {"deflate", "zstd"},
    {"zstd", "deflate"},
    {"gzip", "gzip"},
    {"br", "br"},
    {"zstd", "zstd"},
    {"gzip", "zstd", "br"},
    {"deflate", "br"},
    {"zstd", "gzip"},
};

const uint64_t kMaxOutputs[8] = {0, 1, 7, 100, 4096, 65536, 65537, 1 << 20};

struct Result {
  std::string out;
  bool ok = false;
  DecodeStatus status = DecodeStatus::kOk;
};

Result run(const Codings& codings, uint64_t max, std::string_view body,
           const std::vector<size_t>& cuts) {
  Result r;
  BodyDecoder dec(codings, max);
  const BodyDecoder::Sink sink = [&r, max](std::string_view piece) {
    FUZZ_CHECK(!piece.empty() && piece.size() <= kDecodeChunk);
    r.out.append(piece);
    FUZZ_CHECK(r.out.size() <= max);
    return true;
  };
  bool ok = true;
  size_t at = 0;
  for (size_t cut : cuts) {
    ok = ok && dec.feed(body.substr(at, cut - at), sink);
    at = cut;
  }
  ok = ok && dec.feed(body.substr(at), sink);
  ok = ok && dec.finish(sink);
  r.ok = ok;
  r.status = dec.status();
  FUZZ_CHECK(ok == (r.status == DecodeStatus::kOk));
  FUZZ_CHECK(ok == dec.error().empty());
  FUZZ_CHECK(r.status != DecodeStatus::kUnknownCoding && r.status != DecodeStatus::kSinkStopped);
  FUZZ_CHECK(dec.output_bytes() == r.out.size());
  return r;
}

bool prefix_related(const std::string& a, const std::string& b) {
  const size_t n = std::min(a.size(), b.size());
  return a.compare(0, n, b, 0, n) == 0;
}

// Split points steered by the input: the fuzzer can move them onto headers and block edges.
std::vector<size_t> cuts_for(std::string_view body, const uint8_t* data, size_t size) {
  const size_t n = body.size();
  if (n == 0) return {};
  std::vector<size_t> cuts = {(data[size - 1] * 131u + size) % (n + 1),
                              (data[size / 2] * 257u + 1) % (n + 1), std::min<size_t>(1, n),
                              std::min<size_t>(2, n)};
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

void check_split_invariance(const Codings& codings, uint64_t max, std::string_view body,
                            const uint8_t* data, size_t size) {
  const Result whole = run(codings, max, body, {});
  std::vector<std::vector<size_t>> splits = {cuts_for(body, data, size)};
  if (body.size() <= 256) {
    std::vector<size_t> every;
    for (size_t i = 1; i < body.size(); ++i) every.push_back(i);
    splits.push_back(every);
  }
  for (const auto& cuts : splits) {
    const Result split = run(codings, max, body, cuts);
    FUZZ_CHECK(split.ok == whole.ok);
    if (whole.ok) FUZZ_CHECK(split.out == whole.out);
    FUZZ_CHECK(prefix_related(split.out, whole.out));
  }
}

std::string zlib_encode(std::string_view in, int window_bits) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  FUZZ_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string encode(const Codings& codings, std::string_view plain) {
  std::string body(plain);
  for (const auto& c : codings) {
    if (c == "zstd") {
      std::string out(ZSTD_compressBound(body.size()), '\0');
      const size_t n = ZSTD_compress(out.data(), out.size(), body.data(), body.size(), 1);
      FUZZ_CHECK(!ZSTD_isError(n));
      out.resize(n);
      body = std::move(out);
    } else {
      body = zlib_encode(body, c == "deflate" ? MAX_WBITS : 16 + MAX_WBITS);
    }
  }
  return body;
}

bool has_br(const Codings& codings) {
  return std::find(codings.begin(), codings.end(), "br") != codings.end();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Codings& codings = kStacks[data[0] & 0x0f];
  const uint64_t max = kMaxOutputs[(data[0] >> 4) & 0x07];
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);

  check_split_invariance(codings, max, body, data, size);

  if (!has_br(codings)) {
    const std::string encoded = encode(codings, body);
    const Result back = run(codings, body.size(), encoded, cuts_for(encoded, data, size));
    FUZZ_CHECK(back.ok);
    FUZZ_CHECK(back.out == body);
  }
  return 0;
}
