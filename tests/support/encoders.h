// Content codings for tests: what an upstream sends (gzip, deflate, br, zstd, stacked), made
// with the same libraries the log server decodes with. Failures are doctest REQUIREs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lp::test {

// window_bits: 16 + MAX_WBITS gzip, MAX_WBITS zlib ("deflate"), -MAX_WBITS raw deflate.
std::string zlib_encode(std::string_view in, int window_bits, int level = 6);
std::string gzip(std::string_view in);
std::string br_encode(std::string_view in, int quality = 5);
std::string zstd_encode(std::string_view in, int level = 3);
// A frame from the streaming API without a pledged size has no content-size field, as servers
// streaming a response produce.
std::string zstd_encode_unsized(std::string_view in);
// One coding by its Content-Encoding name ("gzip", "x-gzip", "deflate", "br", "zstd").
std::string encode_one(std::string_view coding, std::string_view in);
// Codings in the order the sender applied them, as Content-Encoding lists them.
std::string encode(const std::vector<std::string>& codings, std::string_view in);

}  // namespace lp::test
