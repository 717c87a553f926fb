#include "tests/support/encoders.h"

#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include <doctest/doctest.h>

namespace lp::test {

std::string zlib_encode(std::string_view in, int window_bits, int level) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string gzip(std::string_view in) {
  return zlib_encode(in, 16 + MAX_WBITS);
}

std::string br_encode(std::string_view in, int quality) {
  size_t size = BrotliEncoderMaxCompressedSize(in.size());
  if (size == 0) size = 16;  // the bound is 0 only when it would overflow; tiny inputs need room
  std::string out(size, '\0');
  REQUIRE(BrotliEncoderCompress(quality, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, in.size(),
                                reinterpret_cast<const uint8_t*>(in.data()), &size,
                                reinterpret_cast<uint8_t*>(out.data())) == BROTLI_TRUE);
  out.resize(size);
  return out;
}

std::string zstd_encode(std::string_view in, int level) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), level);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

std::string zstd_encode_unsized(std::string_view in) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  REQUIRE(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0) == 0);
  std::string out(ZSTD_compressBound(in.size()) + 64, '\0');
  ZSTD_inBuffer src{in.data(), in.size(), 0};
  ZSTD_outBuffer dst{out.data(), out.size(), 0};
  REQUIRE(ZSTD_compressStream2(c, &dst, &src, ZSTD_e_end) == 0);
  ZSTD_freeCCtx(c);
  out.resize(dst.pos);
  return out;
}

std::string encode_one(std::string_view coding, std::string_view in) {
  if (coding == "gzip" || coding == "x-gzip") return gzip(in);
  if (coding == "deflate") return zlib_encode(in, MAX_WBITS);
  if (coding == "br") return br_encode(in);
  if (coding == "zstd") return zstd_encode(in);
  FAIL("no encoder for " << coding);
  return {};
}

std::string encode(const std::vector<std::string>& codings, std::string_view in) {
  std::string body(in);
  for (const auto& c : codings) body = encode_one(c, body);
  return body;
}

}  // namespace lp::test
