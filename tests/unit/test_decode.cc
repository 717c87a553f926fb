// BodyDecoder against bodies encoded here with the real encoders (zlib, libbrotlienc, libzstd):
// every coding and stacks of them, fed whole, split at every position and byte by byte;
// truncated, corrupt and unknown inputs; the output bound, decompression bombs included.
#include "log-server/reading/decode.h"

#include <brotli/encode.h>
#include <doctest/doctest.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "tests/support/encoders.h"

using lp::logsrv::reading::BodyDecoder;
using lp::logsrv::reading::decode_all;
using lp::logsrv::reading::DecodeStatus;
using lp::logsrv::reading::kDecodeChunk;
using lp::logsrv::reading::parse_content_codings;

namespace {

using Codings = std::vector<std::string>;
using lp::test::br_encode;
using lp::test::encode;
using lp::test::zlib_encode;
using lp::test::zstd_encode;
using lp::test::zstd_encode_unsized;

// Deterministic text that compresses like real JSON but spans several output chunks.
std::string sample_text(size_t n, unsigned seed = 7) {
  static const char* const words[] = {"{\"delta\":", "\"content\"", "token", " the", " proxy",
                                      "\n",          "data: ",      "42",    "é",    "\"}"};
  std::mt19937 rng(seed);
  std::string s;
  while (s.size() < n) s += words[rng() % 10];
  s.resize(n);
  return s;
}

// ---- decoding helpers -------------------------------------------------------------------------

struct Decoded {
  std::string out;
  DecodeStatus status = DecodeStatus::kOk;
  std::string error;
  bool ok = false;            // every feed() and finish() returned true
  size_t largest_piece = 0;   // the sink never sees more than kDecodeChunk at once
  uint64_t output_bytes = 0;  // what the decoder says it delivered
};

Decoded decode_pieces(const Codings& codings, const std::vector<std::string_view>& pieces,
                      uint64_t max_output = 1 << 30) {
  Decoded d;
  BodyDecoder dec(codings, max_output);
  const BodyDecoder::Sink sink = [&d](std::string_view piece) {
    d.largest_piece = std::max(d.largest_piece, piece.size());
    d.out.append(piece);
    return true;
  };
  d.ok = true;
  for (auto p : pieces) d.ok = dec.feed(p, sink) && d.ok;
  d.ok = dec.finish(sink) && d.ok;
  d.status = dec.status();
  d.error = dec.error();
  d.output_bytes = dec.output_bytes();
  return d;
}

Decoded decode_whole(const Codings& codings, std::string_view body, uint64_t max_output = 1 << 30) {
  return decode_pieces(codings, {body}, max_output);
}

std::string join(const Codings& c) {
  std::string s;
  for (const auto& x : c) s += (s.empty() ? "" : ", ") + x;
  return s;
}

const std::vector<Codings> kStacks = {
    {"gzip"},
    {"x-gzip"},
    {"deflate"},
    {"br"},
    {"zstd"},
    {"gzip", "br"},
    {"br", "gzip"},
    {"deflate", "zstd"},
    {"zstd", "gzip"},
    {"gzip", "gzip"},
    {"gzip", "br", "zstd"},
};

}  // namespace

// ---- parse_content_codings --------------------------------------------------------------------

TEST_CASE("decode: parse_content_codings rows") {
  struct Row {
    const char* header;
    Codings want;
  };
  const Row rows[] = {
      {"", {}},
      {"gzip", {"gzip"}},
      {"GZip", {"gzip"}},
      {"gzip, br", {"gzip", "br"}},
      {"gzip,br", {"gzip", "br"}},
      {"  gzip \t,\tbr  ", {"gzip", "br"}},
      {"identity", {}},
      {"Identity, gzip", {"gzip"}},
      {"gzip, identity, zstd", {"gzip", "zstd"}},
      {",, gzip ,, ", {"gzip"}},
      {" , ", {}},
      {"x-gzip, deflate, br, zstd", {"x-gzip", "deflate", "br", "zstd"}},
      {"gzip, br, gzip", {"gzip", "br", "gzip"}},  // two header lines joined by the caller
      {"compress", {"compress"}},                  // unknown codings are kept for the decoder
  };
  for (const auto& r : rows) {
    CAPTURE(r.header);
    CHECK(parse_content_codings(r.header) == r.want);
  }
}

// ---- round trips ------------------------------------------------------------------------------

TEST_CASE("decode: every coding and stack round-trips, whole and in pieces") {
  const std::string inputs[] = {"", "x", "hello, world\n", sample_text(300),
                                sample_text(200 * 1024, 11)};
  for (const auto& codings : kStacks) {
    for (const auto& plain : inputs) {
      CAPTURE(join(codings));
      CAPTURE(plain.size());
      const std::string body = encode(codings, plain);
      const Decoded whole = decode_whole(codings, body);
      REQUIRE(whole.ok);
      CHECK(whole.status == DecodeStatus::kOk);
      CHECK(whole.error.empty());
      CHECK(whole.out == plain);
      CHECK(whole.output_bytes == plain.size());
      CHECK(whole.largest_piece <= kDecodeChunk);
      if (body.size() <= 400) {
        for (size_t i = 0; i <= body.size(); ++i) {
          CAPTURE(i);
          const Decoded split = decode_pieces(codings, {body.substr(0, i), body.substr(i)});
          REQUIRE(split.ok);
          REQUIRE(split.out == plain);
        }
        std::vector<std::string_view> bytes;
        for (size_t i = 0; i < body.size(); ++i)
          bytes.push_back(std::string_view(body).substr(i, 1));
        const Decoded bytewise = decode_pieces(codings, bytes);
        REQUIRE(bytewise.ok);
        CHECK(bytewise.out == plain);
      }
    }
  }
}

TEST_CASE("decode: identity and no codings pass bytes through in bounded pieces") {
  const std::string plain = sample_text(3 * kDecodeChunk + 17);
  for (const Codings& codings : {Codings{}, Codings{"identity"}, Codings{"", "identity"}}) {
    const Decoded d = decode_whole(codings, plain);
    CHECK(d.ok);
    CHECK(d.out == plain);
    CHECK(d.largest_piece == kDecodeChunk);
  }
  CHECK(decode_whole({}, "").ok);
}

TEST_CASE("decode: an empty body is valid for every coding") {
  // HEAD and 304 answers keep Content-Encoding with no body at all.
  for (const auto& codings : kStacks) {
    CAPTURE(join(codings));
    const Decoded d = decode_whole(codings, "");
    CHECK(d.ok);
    CHECK(d.out.empty());
  }
}

TEST_CASE("decode: codings are matched without regard to case") {
  const std::string plain = "case";
  CHECK(decode_whole({"GZIP"}, encode({"gzip"}, plain)).out == plain);
  CHECK(decode_whole({"Br"}, encode({"br"}, plain)).out == plain);
}

TEST_CASE("decode: raw deflate is accepted as browsers do") {
  const std::string plain = sample_text(5000);
  const std::string raw = zlib_encode(plain, -MAX_WBITS);
  const Decoded d = decode_whole({"deflate"}, raw);
  CHECK(d.ok);
  CHECK(d.out == plain);
  // Split right after the first byte, so the header sniffing must wait for the second.
  for (size_t i = 0; i <= 3; ++i) {
    CAPTURE(i);
    CHECK(decode_pieces({"deflate"},
                        {std::string_view(raw).substr(0, i), std::string_view(raw).substr(i)})
              .out == plain);
  }
  // A raw stream whose first two bytes already decode to output (fixed Huffman literals).
  const std::string tiny_raw = zlib_encode("ab", -MAX_WBITS);
  const Decoded t = decode_pieces(
      {"deflate"}, {std::string_view(tiny_raw).substr(0, 2), std::string_view(tiny_raw).substr(2)});
  CHECK(t.ok);
  CHECK(t.out == "ab");
}

TEST_CASE("decode: concatenated gzip members and zstd frames") {
  const std::string a = sample_text(1000, 1), b = sample_text(70000, 2), c = "tail";
  const std::string gz = encode({"gzip"}, a) + encode({"gzip"}, b) + encode({"gzip"}, c);
  CHECK(decode_whole({"gzip"}, gz).out == a + b + c);
  const std::string zs = zstd_encode(a) + zstd_encode_unsized(b) + zstd_encode(c);
  CHECK(decode_whole({"zstd"}, zs).out == a + b + c);
  for (size_t i = 0; i <= 60; ++i) {
    CAPTURE(i);
    const std::string small = encode({"gzip"}, "one") + encode({"gzip"}, "two");
    if (i > small.size()) break;
    const Decoded d = decode_pieces(
        {"gzip"}, {std::string_view(small).substr(0, i), std::string_view(small).substr(i)});
    REQUIRE(d.ok);
    REQUIRE(d.out == "onetwo");
  }
}

TEST_CASE("decode: zstd skippable frames, and frame boundaries anywhere in the pieces") {
  const std::string a = sample_text(500, 3), b = sample_text(2000, 4);
  // A skippable frame: magic 0x184D2A53, little-endian size 3, three bytes of user data.
  const std::string skippable = std::string("\x53\x2a\x4d\x18\x03\x00\x00\x00", 8) + "abc";
  const std::string body = skippable + zstd_encode(a) + zstd_encode_unsized(b);
  for (size_t i = 0; i <= body.size(); ++i) {
    CAPTURE(i);
    const Decoded d = decode_pieces(
        {"zstd"}, {std::string_view(body).substr(0, i), std::string_view(body).substr(i)});
    REQUIRE(d.ok);
    REQUIRE(d.out == a + b);
  }
}

TEST_CASE("decode: zstd frames without a content size") {
  const std::string plain = sample_text(300 * 1024, 5);
  const std::string body = zstd_encode_unsized(plain);
  REQUIRE(ZSTD_getFrameContentSize(body.data(), body.size()) == ZSTD_CONTENTSIZE_UNKNOWN);
  const Decoded d = decode_whole({"zstd"}, body);
  CHECK(d.ok);
  CHECK(d.out == plain);
  CHECK(d.largest_piece <= kDecodeChunk);
}

// ---- failures ---------------------------------------------------------------------------------

TEST_CASE("decode: every truncation is corrupt and names the coding") {
  const std::string plain = sample_text(2000, 3);
  for (const auto& codings : kStacks) {
    CAPTURE(join(codings));
    const std::string body = encode(codings, plain);
    // The outermost coding is undone first, so it is the one that sees the cut.
    const std::string& outer = codings.back();
    for (size_t n = 1; n < body.size(); n += (n < 64 ? 1 : 97)) {
      CAPTURE(n);
      const Decoded d = decode_whole(codings, std::string_view(body).substr(0, n));
      REQUIRE_FALSE(d.ok);
      REQUIRE(d.status == DecodeStatus::kCorrupt);
      REQUIRE(d.error.starts_with(outer + ": "));
    }
  }
}

TEST_CASE("decode: corrupt input and trailing garbage") {
  const std::string plain = sample_text(4000, 9);
  struct Row {
    const char* name;
    Codings codings;
    std::string body;
    std::string error_prefix;  // the coding that fails names itself
  };
  std::string flipped_gzip = encode({"gzip"}, plain);
  flipped_gzip[flipped_gzip.size() - 6] ^= 0x55;  // inside the CRC32: checked at member end
  std::string flipped_zlib = encode({"deflate"}, plain);
  flipped_zlib.back() ^= 0x01;  // the Adler-32
  std::string flipped_br = encode({"br"}, plain);
  flipped_br[flipped_br.size() / 2] ^= 0xff;
  std::string flipped_zstd = encode({"zstd"}, plain);
  flipped_zstd[4] ^= 0xff;  // the frame header descriptor
  const Row rows[] = {
      {"not gzip at all", {"gzip"}, "this is plain text, not gzip", "gzip: "},
      {"gzip checksum mismatch", {"gzip"}, flipped_gzip, "gzip: "},
      {"garbage after a gzip member", {"gzip"}, encode({"gzip"}, plain) + "garbage!", "gzip: "},
      {"a zero byte after a gzip member",
       {"gzip"},
       encode({"gzip"}, plain) + std::string(1, '\0'),
       "gzip: "},
      {"x-gzip garbage", {"x-gzip"}, "\x1f\x8b\x08\x00garbage that is no deflate data", "x-gzip: "},
      {"zlib checksum mismatch", {"deflate"}, flipped_zlib, "deflate: "},
      {"data after the deflate stream", {"deflate"}, encode({"deflate"}, plain) + "x", "deflate: "},
      {"corrupt brotli", {"br"}, flipped_br, "br: "},
      {"data after the brotli stream", {"br"}, encode({"br"}, plain) + "x", "br: "},
      {"corrupt zstd header", {"zstd"}, flipped_zstd, "zstd: "},
      {"not zstd at all", {"zstd"}, "definitely not a zstd frame", "zstd: "},
      // libzstd would decode the legacy v0.5 format; it is not the zstd content coding.
      {"a legacy zstd v0.5 frame",
       {"zstd"},
       std::string("\x25\xb5\x2f\xfd\x04\x6b\x95\x3a\x03\x00", 10),
       "zstd: not a zstd frame"},
      {"a second frame with an unknown magic",
       {"zstd"},
       encode({"zstd"}, plain) + std::string("\x25\xb5\x2f\xfd\x04\x6b", 6),
       "zstd: not a zstd frame"},
      {"a truncated magic after a frame", {"zstd"}, encode({"zstd"}, plain) + "\x28\xb5", "zstd: "},
      {"data after the zstd frame", {"zstd"}, encode({"zstd"}, plain) + "junk", "zstd: "},
      {"inner gzip corrupt under br", {"gzip", "br"}, br_encode("not gzip inside"), "gzip: "},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    const Decoded d = decode_whole(r.codings, r.body);
    CHECK_FALSE(d.ok);
    CHECK(d.status == DecodeStatus::kCorrupt);
    CHECK(d.error.starts_with(r.error_prefix));
  }
}

TEST_CASE("decode: failures are sticky") {
  BodyDecoder dec({"gzip"}, 1 << 20);
  const BodyDecoder::Sink sink = [](std::string_view) { return true; };
  CHECK_FALSE(dec.feed("not gzip", sink));
  const std::string err = dec.error();
  CHECK_FALSE(dec.feed(encode({"gzip"}, "fine"), sink));
  CHECK_FALSE(dec.finish(sink));
  CHECK(dec.status() == DecodeStatus::kCorrupt);
  CHECK(dec.error() == err);
}

TEST_CASE("decode: unknown codings are refused by name") {
  struct Row {
    Codings codings;
    const char* error;
  };
  const Row rows[] = {
      {{"compress"}, "unknown content coding \"compress\""},
      {{"gzip", "foo"}, "unknown content coding \"foo\""},
      {{"snappy", "gzip"}, "unknown content coding \"snappy\""},
      {{"gzip", "gzip", "gzip", "gzip", "gzip"}, "too many content codings (5 > 4)"},
  };
  for (const auto& r : rows) {
    CAPTURE(join(r.codings));
    BodyDecoder dec(r.codings, 1000);
    CHECK(dec.status() == DecodeStatus::kUnknownCoding);
    CHECK(dec.error() == r.error);
    bool called = false;
    const BodyDecoder::Sink sink = [&called](std::string_view) { return called = true; };
    CHECK_FALSE(dec.feed("abc", sink));
    CHECK_FALSE(dec.finish(sink));
    CHECK_FALSE(called);
  }
  std::string out, error;
  CHECK(decode_all("x", {"lzma"}, 10, &out, &error) == DecodeStatus::kUnknownCoding);
  CHECK(error == "unknown content coding \"lzma\"");
}

// ---- bounds -----------------------------------------------------------------------------------

TEST_CASE("decode: max_output is a hard bound on what the sink receives") {
  const std::string plain = sample_text(100000, 4);
  for (const Codings& codings :
       {Codings{}, Codings{"gzip"}, Codings{"br"}, Codings{"zstd"}, Codings{"deflate", "br"}}) {
    CAPTURE(join(codings));
    const std::string body = encode(codings, plain);
    const Decoded exact = decode_whole(codings, body, plain.size());
    CHECK(exact.ok);
    CHECK(exact.out == plain);
    const Decoded over = decode_whole(codings, body, plain.size() - 1);
    CHECK_FALSE(over.ok);
    CHECK(over.status == DecodeStatus::kTooLarge);
    CHECK(over.error == "decoded body exceeds " + std::to_string(plain.size() - 1) + " bytes");
    CHECK(over.out == plain.substr(0, plain.size() - 1));
    CHECK(over.output_bytes == plain.size() - 1);
    CHECK(decode_whole(codings, body, 0).status ==
          (plain.empty() ? DecodeStatus::kOk : DecodeStatus::kTooLarge));
  }
}

TEST_CASE("decode: a sink returning false stops decoding") {
  const std::string plain = sample_text(5 * kDecodeChunk, 6);
  const std::string body = encode({"gzip"}, plain);
  BodyDecoder dec({"gzip"}, 1 << 30);
  int calls = 0;
  const BodyDecoder::Sink sink = [&calls](std::string_view) { return ++calls < 2; };
  CHECK_FALSE(dec.feed(body, sink));
  CHECK(dec.status() == DecodeStatus::kSinkStopped);
  CHECK(calls == 2);
  CHECK_FALSE(dec.feed("more", sink));
  CHECK(calls == 2);
}

TEST_CASE("decode: decode_all appends the output and reports errors") {
  std::string out = "prefix:", error = "stale";
  CHECK(decode_all(encode({"gzip", "zstd"}, "body"), {"gzip", "zstd"}, 100, &out, &error) ==
        DecodeStatus::kOk);
  CHECK(out == "prefix:body");
  CHECK(error.empty());
  out.clear();
  CHECK(decode_all(encode({"br"}, "body"), {"br"}, 100, &out, &error) == DecodeStatus::kOk);
  CHECK(decode_all("\x1f\x8b", {"gzip"}, 100, &out, &error) == DecodeStatus::kCorrupt);
  CHECK(error.starts_with("gzip: "));
}

// ---- decompression bombs ----------------------------------------------------------------------

namespace {

constexpr size_t kBombPlain = 300u << 20;  // 300 MB of zeros
constexpr uint64_t kBombLimit = 10u << 20;

std::string gzip_bomb() {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  const std::string zeros(1 << 20, '\0');
  std::string out, buf(1 << 16, '\0');
  for (size_t done = 0; done <= kBombPlain; done += zeros.size()) {
    const bool last = done == kBombPlain;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
    z.avail_in = last ? 0 : static_cast<uInt>(zeros.size());
    int rc;
    do {
      z.next_out = reinterpret_cast<Bytef*>(buf.data());
      z.avail_out = static_cast<uInt>(buf.size());
      rc = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
      out.append(buf.data(), buf.size() - z.avail_out);
    } while (z.avail_out == 0 || (last && rc != Z_STREAM_END));
  }
  deflateEnd(&z);
  return out;
}

std::string zstd_bomb() {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
  const std::string zeros(1 << 20, '\0');
  std::string out, buf(ZSTD_CStreamOutSize(), '\0');
  for (size_t done = 0; done <= kBombPlain; done += zeros.size()) {
    const bool last = done == kBombPlain;
    ZSTD_inBuffer src{zeros.data(), last ? 0 : zeros.size(), 0};
    size_t remaining;
    do {
      ZSTD_outBuffer dst{buf.data(), buf.size(), 0};
      remaining = ZSTD_compressStream2(c, &dst, &src, last ? ZSTD_e_end : ZSTD_e_continue);
      REQUIRE_FALSE(ZSTD_isError(remaining));
      out.append(buf.data(), dst.pos);
    } while (last ? remaining != 0 : src.pos < src.size);
  }
  ZSTD_freeCCtx(c);
  return out;
}

std::string br_bomb() {
  BrotliEncoderState* s = BrotliEncoderCreateInstance(nullptr, nullptr, nullptr);
  BrotliEncoderSetParameter(s, BROTLI_PARAM_QUALITY, 1);
  const std::string zeros(1 << 20, '\0');
  std::string out;
  for (size_t done = 0; done <= kBombPlain; done += zeros.size()) {
    const bool last = done == kBombPlain;
    size_t avail_in = last ? 0 : zeros.size();
    auto* next_in = reinterpret_cast<const uint8_t*>(zeros.data());
    const auto op = last ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_PROCESS;
    while (avail_in > 0 || BrotliEncoderHasMoreOutput(s) || (last && !BrotliEncoderIsFinished(s))) {
      size_t avail_out = 0;
      REQUIRE(
          BrotliEncoderCompressStream(s, op, &avail_in, &next_in, &avail_out, nullptr, nullptr));
      size_t n = 0;
      const uint8_t* produced = BrotliEncoderTakeOutput(s, &n);
      out.append(reinterpret_cast<const char*>(produced), n);
    }
  }
  BrotliEncoderDestroyInstance(s);
  return out;
}

}  // namespace

TEST_CASE("decode: decompression bombs stop at max_output") {
  struct Row {
    Codings codings;
    std::string body;
  };
  const auto started = std::chrono::steady_clock::now();
  const std::string gz = gzip_bomb();
  const Row rows[] = {
      {{"gzip"}, gz},
      {{"zstd"}, zstd_bomb()},
      {{"br"}, br_bomb()},
      {{"gzip", "br"}, br_encode(gz, 1)},  // the bomb inside another coding
  };
  for (const auto& r : rows) {
    CAPTURE(join(r.codings));
    CAPTURE(r.body.size());
    CHECK(r.body.size() < kBombPlain / 100);  // it really is a bomb
    uint64_t total = 0;
    size_t largest = 0;
    BodyDecoder dec(r.codings, kBombLimit);
    const BodyDecoder::Sink sink = [&](std::string_view piece) {
      total += piece.size();
      largest = std::max(largest, piece.size());
      return true;
    };
    bool ok = true;
    for (size_t at = 0; ok && at < r.body.size(); at += 4096) {
      ok = dec.feed(std::string_view(r.body).substr(at, 4096), sink);
    }
    CHECK_FALSE(ok);
    CHECK(dec.status() == DecodeStatus::kTooLarge);
    CHECK(total == kBombLimit);
    CHECK(dec.output_bytes() == kBombLimit);
    CHECK(largest <= kDecodeChunk);
  }
  MESSAGE("bomb test took " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - started)
                                   .count()
                            << " ms");
}
