// The shared-secret check of the API: with a token configured, a request must carry
// "Authorization: Bearer TOKEN". The comparison is constant-time (SHA-256 of both sides, then
// CRYPTO_memcmp), so neither the token's bytes nor its length leak through timing.
// cpp-httplib 0.11.4 percent-decodes header values before we see them, so a token containing
// '%' could never match what a client sends: such tokens are refused at startup.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace lp::logsrv {

// nullopt when `token` is usable, else the reason (contains '%', spaces or control bytes).
std::optional<std::string> token_problem(std::string_view token);

class BearerAuth {
 public:
  explicit BearerAuth(std::string_view token);  // empty: no authentication
  bool enabled() const { return enabled_; }
  // `authorization` is the header value ("" when absent).
  bool allows(std::string_view authorization) const;

 private:
  bool enabled_ = false;
  std::array<unsigned char, 32> digest_{};
};

}  // namespace lp::logsrv
