#include "proxy/body_stream.h"

#include <cstdio>

namespace lp {

BodyReader::BodyReader(BodyFraming framing, std::string leftover)
    : framing_(framing), leftover_(std::move(leftover)), remaining_(framing.length) {
  if (framing_.kind == BodyFraming::Kind::kNone ||
      (framing_.kind == BodyFraming::Kind::kLength && remaining_ == 0)) {
    done_ = true;
  }
}

IoResult BodyReader::on_eof() {
  IoResult r;
  if (framing_.kind == BodyFraming::Kind::kUntilClose) {
    done_ = true;
    return r;
  }
  r.status = IoResult::Status::kError;
  r.error = "connection closed before the end of the body";
  return r;
}

void BodyEncoder::append(std::string* out, std::string_view piece) const {
  if (piece.empty()) return;  // an empty chunk would end a chunked body
  if (framing_.kind == BodyFraming::Kind::kChunked) {
    char size[24];
    int n = std::snprintf(size, sizeof(size), "%zx\r\n", piece.size());
    out->append(size, static_cast<size_t>(n));
    out->append(piece);
    out->append("\r\n");
  } else {
    out->append(piece);
  }
}

void BodyEncoder::finish(std::string* out) const {
  if (framing_.kind == BodyFraming::Kind::kChunked) out->append("0\r\n\r\n");
}

}  // namespace lp
