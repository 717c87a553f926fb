#include "proxy/redaction.h"

#include <cctype>

namespace lp {
namespace {

// An auth scheme is a single word of letters, digits and '-' before the first space
// ("Bearer", "Basic", "Token"); a cookie like "a=b; c=d" has none.
size_t scheme_length(std::string_view value) {
  size_t space = value.find(' ');
  if (space == 0 || space == std::string_view::npos) return 0;
  if (!std::isalpha(static_cast<unsigned char>(value[0]))) return 0;
  for (size_t i = 0; i < space; ++i) {
    char c = value[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return 0;
  }
  return space;
}

}  // namespace

std::string redact_value(std::string_view value) {
  size_t scheme = scheme_length(value);
  std::string out(value.substr(0, scheme));
  std::string_view secret = value.substr(scheme);
  while (!secret.empty() && secret.front() == ' ') secret.remove_prefix(1);
  if (scheme > 0) out += ' ';
  out += kMask;
  if (secret.size() >= kMinSecretForTail) out += secret.substr(secret.size() - 4);
  return out;
}

bool Redactor::applies_to(std::string_view header_name) const {
  if (!enabled_) return false;
  for (const auto& n : names_) {
    if (iequals(n, header_name)) return true;
  }
  return false;
}

HeaderList Redactor::apply(const HeaderList& headers) const {
  HeaderList out = headers;
  if (!enabled_) return out;
  for (auto& h : out) {
    if (applies_to(h.name)) h.value = redact_value(h.value);
  }
  return out;
}

}  // namespace lp
