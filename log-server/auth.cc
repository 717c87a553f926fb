#include "log-server/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace lp::logsrv {

namespace {

std::array<unsigned char, 32> sha256(std::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

}  // namespace

std::optional<std::string> token_problem(std::string_view token) {
  for (char c : token) {
    auto u = static_cast<unsigned char>(c);
    if (c == '%') {
      return "must not contain '%' (the HTTP library percent-decodes header values, so it "
             "could never match)";
    }
    if (u <= 0x20 || u == 0x7f) return "must not contain spaces or control characters";
  }
  return std::nullopt;
}

BearerAuth::BearerAuth(std::string_view token) : enabled_(!token.empty()) {
  if (enabled_) digest_ = sha256(token);
}

bool BearerAuth::allows(std::string_view authorization) const {
  if (!enabled_) return true;
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() < kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = authorization[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return false;
  }
  std::string_view presented = authorization.substr(kScheme.size());
  while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
  auto digest = sha256(presented);
  return CRYPTO_memcmp(digest.data(), digest_.data(), digest.size()) == 0;
}

}  // namespace lp::logsrv
