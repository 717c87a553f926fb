#include "log-server/byte_range.h"

#include <algorithm>

namespace lp::logsrv {

namespace {

// Up to 18 decimal digits (no sign, no spaces); nullopt otherwise.
std::optional<int64_t> number(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

ByteRange rejected(std::string problem) {
  ByteRange r;
  r.kind = ByteRange::Kind::kRejected;
  r.problem = std::move(problem);
  return r;
}

}  // namespace

ByteRange parse_byte_range(std::string_view header, int64_t size) {
  constexpr std::string_view kUnit = "bytes=";
  if (header.size() < kUnit.size()) return {};
  for (size_t i = 0; i < kUnit.size(); ++i) {
    char c = header[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kUnit[i]) return {};  // another unit: ignored
  }
  std::string_view spec = header.substr(kUnit.size());
  while (!spec.empty() && spec.front() == ' ') spec.remove_prefix(1);
  while (!spec.empty() && spec.back() == ' ') spec.remove_suffix(1);
  if (spec.find(',') != std::string_view::npos) return {};  // several ranges: the whole message
  const std::string kForm =
      "Range header: expected bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX";
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return rejected(kForm);
  std::string_view a = spec.substr(0, dash), b = spec.substr(dash + 1);
  ByteRange r;
  r.kind = ByteRange::Kind::kPart;
  if (a.empty()) {  // the last N bytes
    auto n = number(b);
    if (!n) return rejected(kForm);
    if (*n == 0 || size == 0) {
      return rejected("Range header: an empty suffix range selects no bytes");
    }
    r.length = std::min(*n, size);
    r.first = size - r.length;
    return r;
  }
  auto first = number(a);
  if (!first) return rejected(kForm);
  int64_t last = size - 1;
  if (!b.empty()) {
    auto l = number(b);
    if (!l) return rejected(kForm);
    if (*l < *first) return rejected("Range header: the last byte is before the first");
    last = std::min(*l, size - 1);
  }
  if (*first >= size) {
    return rejected("Range header: starts at byte " + std::to_string(*first) +
                    ", the message has " + std::to_string(size) + " bytes");
  }
  r.first = *first;
  r.length = last - *first + 1;
  return r;
}

}  // namespace lp::logsrv
