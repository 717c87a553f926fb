#include "log-server/reading/decode.h"

#include "common/ascii.h"

#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <utility>

namespace lp::logsrv::reading {

namespace {

// Real responses carry one coding, rarely two. Each stage may hold a large window (brotli up
// to 16 MB, zstd up to 8 MB), so a longer stack is refused rather than allowed to multiply
// memory.
constexpr size_t kMaxCodings = 4;

// RFC 9659: a zstd content coding's window is at most 8 MB and a decoder may refuse more;
// browsers do. Without this a frame could ask for a 2 GB window.
constexpr int kZstdWindowLogMax = 23;

using Next = std::function<bool(std::string_view)>;

struct Failure {
  DecodeStatus status = DecodeStatus::kOk;
  std::string error;

  bool fail(DecodeStatus s, std::string message) {
    if (status == DecodeStatus::kOk) {
      status = s;
      error = std::move(message);
    }
    return false;
  }
};

// One coding being undone. feed()/finish() pass output to `next` in pieces of at most
// kDecodeChunk; they return false when this stage failed (recorded in the Failure) or when
// `next` returned false (recorded downstream).
class Stage {
 public:
  Stage(std::string name, Failure* failure)
      : name_(std::move(name)), failure_(failure), buf_(new char[kDecodeChunk]) {}
  virtual ~Stage() = default;
  Stage(const Stage&) = delete;
  Stage& operator=(const Stage&) = delete;

  virtual bool feed(std::string_view in, const Next& next) = 0;
  virtual bool finish() = 0;

 protected:
  bool corrupt(std::string_view what) {
    return failure_->fail(DecodeStatus::kCorrupt, name_ + ": " + std::string(what));
  }
  bool out_of_memory() { return failure_->fail(DecodeStatus::kCorrupt, name_ + ": out of memory"); }
  bool emit(size_t n, const Next& next) { return n == 0 || next(std::string_view(buf_.get(), n)); }

  std::string name_;
  Failure* failure_;
  std::unique_ptr<char[]> buf_;
};

// gzip/x-gzip (concatenated members accepted) and deflate (zlib-wrapped, or raw as browsers
// accept). An empty body is valid for every coding: HEAD and 304 answers keep the header.
class ZlibStage : public Stage {
 public:
  ZlibStage(std::string name, bool gzip, Failure* failure)
      : Stage(std::move(name), failure), gzip_(gzip) {}
  ~ZlibStage() override {
    if (initialised_) inflateEnd(&z_);
  }

  bool feed(std::string_view in, const Next& next) override {
    if (!initialised_) {
      if (!init(&in)) return false;
      if (!initialised_) return true;  // still waiting for the deflate header's two bytes
      // The held bytes come first; for raw deflate they may already decode to output.
      std::string held;
      held.swap(held_);
      if (!inflate_piece(held, next)) return false;
    }
    // avail_in is 32-bit: larger pieces go in slices.
    constexpr size_t kSlice = size_t{1} << 30;
    for (size_t at = 0; at < in.size(); at += kSlice) {
      if (!inflate_piece(in.substr(at, kSlice), next)) return false;
    }
    return true;
  }

  bool finish() override {
    if (held_.size() == 1) return corrupt("truncated stream");
    if (in_stream_) return corrupt("truncated stream");
    return true;
  }

 private:
  // gzip starts at once. deflate needs two bytes to tell a zlib header from raw deflate; they
  // are held (at most two) and then replayed into inflate.
  bool init(std::string_view* in) {
    int window_bits = 16 + MAX_WBITS;
    if (!gzip_) {
      while (held_.size() < 2 && !in->empty()) {
        held_.push_back(in->front());
        in->remove_prefix(1);
      }
      if (held_.size() < 2) return true;
      window_bits = looks_like_zlib_header() ? MAX_WBITS : -MAX_WBITS;
    }
    if (inflateInit2(&z_, window_bits) != Z_OK) return out_of_memory();
    initialised_ = true;
    return true;
  }

  bool inflate_piece(std::string_view in, const Next& next) {
    if (in.empty()) return true;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    return pump(next);
  }

  bool looks_like_zlib_header() const {
    const auto cmf = static_cast<unsigned char>(held_[0]);
    const auto flg = static_cast<unsigned char>(held_[1]);
    return (cmf & 0x0f) == Z_DEFLATED && (cmf >> 4) <= 7 && ((cmf << 8) | flg) % 31 == 0;
  }

  bool pump(const Next& next) {
    for (;;) {
      if (ended_ && z_.avail_in > 0) return corrupt("trailing data after the end of the stream");
      if (z_.avail_in > 0) in_stream_ = true;
      z_.next_out = reinterpret_cast<Bytef*>(buf_.get());
      z_.avail_out = static_cast<uInt>(kDecodeChunk);
      const int rc = inflate(&z_, Z_NO_FLUSH);
      // What decoded before a corruption is delivered first, as if the body had been cut.
      if (!emit(kDecodeChunk - z_.avail_out, next)) return false;
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
        return corrupt(z_.msg != nullptr ? z_.msg : "invalid data");
      }
      if (rc == Z_STREAM_END) {
        in_stream_ = false;
        if (!gzip_) {
          ended_ = true;
        } else if (inflateReset(&z_) != Z_OK) {
          return corrupt("cannot start the next member");
        }
        // A following gzip member starts here; inflate checks its header like the first.
        if (z_.avail_in == 0) return true;
        continue;
      }
      // Output space left over means inflate has consumed everything it can.
      if (z_.avail_out != 0 || rc == Z_BUF_ERROR) return true;
    }
  }

  bool gzip_;
  bool initialised_ = false;
  bool in_stream_ = false;  // bytes of a member/stream were fed and its end not reached
  bool ended_ = false;      // deflate: the one stream ended; nothing may follow
  std::string held_;
  z_stream z_{};
};

class BrotliStage : public Stage {
 public:
  BrotliStage(std::string name, Failure* failure)
      : Stage(std::move(name), failure),
        s_(BrotliDecoderCreateInstance(nullptr, nullptr, nullptr)) {}
  ~BrotliStage() override { BrotliDecoderDestroyInstance(s_); }

  bool feed(std::string_view in, const Next& next) override {
    if (s_ == nullptr) return out_of_memory();
    if (in.empty()) return true;
    if (done_) return corrupt("trailing data after the end of the stream");
    started_ = true;
    auto* next_in = reinterpret_cast<const uint8_t*>(in.data());
    size_t avail_in = in.size();
    for (;;) {
      auto* next_out = reinterpret_cast<uint8_t*>(buf_.get());
      size_t avail_out = kDecodeChunk;
      const BrotliDecoderResult r =
          BrotliDecoderDecompressStream(s_, &avail_in, &next_in, &avail_out, &next_out, nullptr);
      if (!emit(kDecodeChunk - avail_out, next)) return false;
      if (r == BROTLI_DECODER_RESULT_ERROR) {
        return corrupt(BrotliDecoderErrorString(BrotliDecoderGetErrorCode(s_)));
      }
      if (r == BROTLI_DECODER_RESULT_SUCCESS) {
        done_ = true;
        return avail_in == 0 || corrupt("trailing data after the end of the stream");
      }
      if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) return true;
    }
  }

  bool finish() override { return !started_ || done_ || corrupt("truncated stream"); }

 private:
  BrotliDecoderState* s_;
  bool started_ = false;
  bool done_ = false;
};

// Frames without a content size and concatenated (and skippable) frames are all handled by
// the streaming API; ZSTD_decompressStream returns 0 exactly when a frame is complete, and
// stops there, so each frame's magic number is seen before it is decoded. Only RFC 8878 frames
// and skippable frames are accepted: libzstd also decodes the legacy v0.x formats, which are not
// the zstd content coding, and whose decoders give output that depends on how a corrupt body is
// split into pieces.
class ZstdStage : public Stage {
 public:
  ZstdStage(std::string name, Failure* failure)
      : Stage(std::move(name), failure), d_(ZSTD_createDCtx()) {
    if (d_ != nullptr) ZSTD_DCtx_setParameter(d_, ZSTD_d_windowLogMax, kZstdWindowLogMax);
  }
  ~ZstdStage() override { ZSTD_freeDCtx(d_); }

  bool feed(std::string_view in, const Next& next) override {
    if (d_ == nullptr) return out_of_memory();
    while (!in.empty() || pending_output_) {
      if (magic_.size() < kMagicSize && !in.empty()) {  // a frame starts: its magic first
        const size_t take = std::min(kMagicSize - magic_.size(), in.size());
        magic_.append(in.substr(0, take));
        in.remove_prefix(take);
        if (magic_.size() < kMagicSize) return true;
        if (!known_magic()) return corrupt("not a zstd frame (unknown magic number)");
        const std::string magic = magic_;  // decompress() clears magic_ at a frame's end
        size_t used = 0;
        if (!decompress(magic, &used, next)) return false;
        continue;
      }
      size_t used = 0;
      if (!decompress(in, &used, next)) return false;
      in.remove_prefix(used);
    }
    return true;
  }

  bool finish() override {
    if (!magic_.empty() && magic_.size() < kMagicSize) return corrupt("truncated stream");
    return !frame_open_ || corrupt("truncated stream");
  }

 private:
  static constexpr size_t kMagicSize = 4;

  bool known_magic() const {
    uint32_t m = 0;
    for (size_t i = kMagicSize; i-- > 0;) m = (m << 8) | static_cast<unsigned char>(magic_[i]);
    return m == ZSTD_MAGICNUMBER || (m & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START;
  }

  // Decodes from `in` until it is used up or the frame ends (then the next bytes are a new
  // frame's magic); *used says how much of `in` was taken.
  bool decompress(std::string_view in, size_t* used, const Next& next) {
    ZSTD_inBuffer src{in.data(), in.size(), 0};
    do {
      ZSTD_outBuffer dst{buf_.get(), kDecodeChunk, 0};
      const size_t r = ZSTD_decompressStream(d_, &dst, &src);
      if (!emit(dst.pos, next)) return false;
      if (ZSTD_isError(r)) return corrupt(ZSTD_getErrorName(r));
      frame_open_ = r != 0;
      pending_output_ = dst.pos == dst.size;  // a full buffer may leave output inside zstd
      if (!frame_open_ && !pending_output_) {
        magic_.clear();  // the frame ended: what follows starts another
        break;
      }
    } while (src.pos < src.size || pending_output_);
    *used = src.pos;
    return true;
  }

  ZSTD_DCtx* d_;
  std::string magic_;  // the current frame's first bytes, until kMagicSize are known
  bool frame_open_ = false;
  bool pending_output_ = false;
};

std::unique_ptr<Stage> make_stage(const std::string& coding, Failure* failure) {
  if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) {
    return std::make_unique<ZlibStage>(coding, true, failure);
  }
  if (iequals(coding, "deflate")) {
    return std::make_unique<ZlibStage>(coding, false, failure);
  }
  if (iequals(coding, "br")) return std::make_unique<BrotliStage>(coding, failure);
  if (iequals(coding, "zstd")) return std::make_unique<ZstdStage>(coding, failure);
  return nullptr;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::vector<std::string> parse_content_codings(std::string_view header_value) {
  std::vector<std::string> codings;
  while (true) {
    const size_t comma = header_value.find(',');
    std::string item(trim_ows(header_value.substr(0, comma)));
    for (char& c : item) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    if (!item.empty() && item != "identity") codings.push_back(std::move(item));
    if (comma == std::string_view::npos) break;
    header_value.remove_prefix(comma + 1);
  }
  return codings;
}

struct BodyDecoder::Impl {
  Failure failure;
  std::vector<std::unique_ptr<Stage>> stages;  // stages[0] undoes the last coding applied
  uint64_t max_output = 0;
  uint64_t output = 0;
  bool finished = false;

  void build(std::vector<std::string> codings) {
    std::erase_if(codings,
                  [](const std::string& c) { return c.empty() || iequals(c, "identity"); });
    if (codings.size() > kMaxCodings) {
      failure.fail(DecodeStatus::kUnknownCoding, "too many content codings (" +
                                                     std::to_string(codings.size()) + " > " +
                                                     std::to_string(kMaxCodings) + ")");
      return;
    }
    for (auto it = codings.rbegin(); it != codings.rend(); ++it) {
      auto stage = make_stage(*it, &failure);
      if (stage == nullptr) {
        failure.fail(DecodeStatus::kUnknownCoding, "unknown content coding \"" + *it + "\"");
        stages.clear();
        return;
      }
      stages.push_back(std::move(stage));
    }
  }

  // Feeds `in` into stage i; past the last stage it goes to the sink.
  bool push(size_t i, std::string_view in, const Sink& sink) {
    if (i == stages.size()) return deliver(in, sink);
    return stages[i]->feed(
        in, [this, i, &sink](std::string_view out) { return push(i + 1, out, sink); });
  }

  // The bound is enforced here, on the final output, so the sink sees at most max_output
  // bytes: the part that still fits is delivered, then decoding stops.
  bool deliver(std::string_view out, const Sink& sink) {
    while (!out.empty()) {
      const uint64_t room = max_output - output;
      const size_t n = static_cast<size_t>(std::min<uint64_t>({out.size(), kDecodeChunk, room}));
      if (n == 0) {
        return failure.fail(DecodeStatus::kTooLarge,
                            "decoded body exceeds " + std::to_string(max_output) + " bytes");
      }
      output += n;
      if (!sink(out.substr(0, n))) {
        return failure.fail(DecodeStatus::kSinkStopped, "stopped by the reader");
      }
      out.remove_prefix(n);
    }
    return true;
  }
};

BodyDecoder::BodyDecoder(std::vector<std::string> codings, uint64_t max_output)
    : impl_(std::make_unique<Impl>()) {
  impl_->max_output = max_output;
  impl_->build(std::move(codings));
}

BodyDecoder::~BodyDecoder() = default;
BodyDecoder::BodyDecoder(BodyDecoder&&) noexcept = default;
BodyDecoder& BodyDecoder::operator=(BodyDecoder&&) noexcept = default;

bool BodyDecoder::feed(std::string_view encoded, const Sink& sink) {
  if (impl_->failure.status != DecodeStatus::kOk) return false;
  if (encoded.empty()) return true;
  return impl_->push(0, encoded, sink);
}

bool BodyDecoder::finish(const Sink& /*sink*/) {
  // Every stage emits all it can during feed(), so finishing only checks that each stream
  // ended; the sink stays in the signature for codings that might buffer a tail.
  if (impl_->failure.status != DecodeStatus::kOk) return false;
  for (auto& stage : impl_->stages) {
    if (!stage->finish()) return false;
  }
  return true;
}

DecodeStatus BodyDecoder::status() const {
  return impl_->failure.status;
}
const std::string& BodyDecoder::error() const {
  return impl_->failure.error;
}
uint64_t BodyDecoder::output_bytes() const {
  return impl_->output;
}

DecodeStatus decode_all(std::string_view encoded, const std::vector<std::string>& codings,
                        uint64_t max_output, std::string* out, std::string* error) {
  BodyDecoder decoder(codings, max_output);
  const BodyDecoder::Sink sink = [out](std::string_view piece) {
    out->append(piece);
    return true;
  };
  // Fed in bounded pieces so a huge in-memory body is handled exactly like a streamed one.
  bool ok = true;
  for (size_t at = 0; ok && at < encoded.size(); at += kDecodeChunk) {
    ok = decoder.feed(encoded.substr(at, kDecodeChunk), sink);
  }
  if (ok) decoder.finish(sink);
  if (error != nullptr) *error = decoder.error();
  return decoder.status();
}

}  // namespace lp::logsrv::reading
