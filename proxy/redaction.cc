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

constexpr std::string_view kSecretQueryParams[] = {
    "key",   "api_key",      "api-key",       "apikey",   "x-api-key",
    "token", "access_token", "refresh_token", "id_token", "auth",
    "sig",   "signature",    "password",      "secret",   "client_secret"};

}  // namespace

bool is_secret_query_param(std::string_view name) {
  for (std::string_view n : kSecretQueryParams) {
    if (iequals(n, name)) return true;
  }
  return false;
}

void append_redacted_query(std::string* out, std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) {
    out->append(target);
    return;
  }
  out->append(target.substr(0, q + 1));
  std::string_view rest = target.substr(q + 1);
  size_t hash = rest.find('#');
  std::string_view query = rest.substr(0, hash);
  while (true) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    size_t eq = param.find('=');
    if (eq != std::string_view::npos && is_secret_query_param(param.substr(0, eq))) {
      out->append(param.substr(0, eq + 1));
      out->append(redact_value(param.substr(eq + 1)));
    } else {
      out->append(param);
    }
    if (amp == std::string_view::npos) break;
    out->push_back('&');
    query.remove_prefix(amp + 1);
  }
  if (hash != std::string_view::npos) out->append(rest.substr(hash));
}

std::string redact_query(std::string_view target) {
  std::string out;
  out.reserve(target.size() + 8);
  append_redacted_query(&out, target);
  return out;
}

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
