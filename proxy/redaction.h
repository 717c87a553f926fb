// Masking credentials in captured headers. Captures only: forwarded traffic is never altered.
// A masked value keeps its scheme and, when the secret is long enough not to give much away,
// its last 4 characters: "Bearer sk-abc...wxyz" -> "Bearer ****wxyz". Pure code.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/http_message.h"

namespace lp {

// Secrets shorter than this are masked entirely ("****"): 4 of 8 characters is too much.
inline constexpr size_t kMinSecretForTail = 12;
inline constexpr std::string_view kMask = "****";

std::string redact_value(std::string_view value);

// Query parameters whose values are credentials (`?key=sk-...`), compared case-insensitively
// with the parameter's name as written: key, api_key, api-key, apikey, x-api-key, token,
// access_token, refresh_token, id_token, auth, sig, signature, password, secret, client_secret.
bool is_secret_query_param(std::string_view name);
// `target` (path?query#fragment) with the values of those parameters masked like header
// values ("?key=****wxyz&model=x"); everything else, order and separators kept byte for byte.
// A target without a secret parameter comes back unchanged.
std::string redact_query(std::string_view target);
// The same, appended to `out` (no allocation when `out` has room).
void append_redacted_query(std::string* out, std::string_view target);

class Redactor {
 public:
  // `names`: header names to mask (case-insensitive); `enabled` false masks nothing.
  Redactor(bool enabled, std::vector<std::string> names)
      : enabled_(enabled), names_(std::move(names)) {}
  bool enabled() const { return enabled_; }
  bool applies_to(std::string_view header_name) const;
  // A copy of `headers` with the listed ones masked.
  HeaderList apply(const HeaderList& headers) const;

 private:
  bool enabled_;
  std::vector<std::string> names_;
};

}  // namespace lp
