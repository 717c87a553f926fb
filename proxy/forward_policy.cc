#include "proxy/forward_policy.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdlib>

#include "common/ascii.h"
#include "common/host_pattern.h"

namespace lp {
namespace {

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard alphabet; padding optional (some clients leave it off), anything else rejected.
std::optional<std::string> base64_decode(std::string_view in) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  unsigned bits = 0;
  int count = 0;
  for (char c : in) {
    int v = base64_value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<unsigned>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  return out;
}

}  // namespace

bool host_matches(std::string_view pattern, std::string_view host) {
  const std::string h = normalize_host(host);
  if (pattern.starts_with("*.")) {
    if (is_ip_literal(h)) return false;
    const std::string suffix = normalize_host(pattern.substr(1));  // ".example.com"
    return h.size() > suffix.size() && h.ends_with(suffix);
  }
  return normalize_host(pattern) == h;
}

std::optional<std::pair<std::string, std::string>> parse_basic_credentials(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  if (!ascii_istarts_with(value, "basic ")) return std::nullopt;
  value.remove_prefix(6);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  std::optional<std::string> decoded = base64_decode(value);
  if (!decoded) return std::nullopt;
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(decoded->substr(0, colon), decoded->substr(colon + 1));
}

std::string sha256_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr) != 1) {
    return std::string();  // matches no configured hash (those are 64 digits)
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

std::unique_ptr<ForwardPolicy> ForwardPolicy::create(const ForwardProxyConfig& config,
                                                     std::string* error, const EnvLookup& lookup) {
  std::unique_ptr<ForwardPolicy> policy(new ForwardPolicy());
  policy->intercept_ = config.intercept;
  policy->exclude_ = config.exclude;
  for (const ForwardProxyUser& u : config.users) {
    if (u.password_env.empty()) {
      policy->users_.push_back({u.name, sha256_hex(u.name), ascii_lowered(u.password_sha256)});
      continue;
    }
    const char* password = lookup ? lookup(u.password_env) : std::getenv(u.password_env.c_str());
    if (password == nullptr || *password == '\0') {
      *error = "forward_proxy.users: user '" + u.name + "': environment variable " +
               u.password_env + (password == nullptr ? " is not set" : " is empty");
      return nullptr;
    }
    policy->users_.push_back({u.name, sha256_hex(u.name), sha256_hex(password)});
  }
  return policy;
}

ForwardAction ForwardPolicy::decide(std::string_view host) const {
  for (const std::string& p : exclude_) {
    if (host_matches(p, host)) return ForwardAction::kTunnel;
  }
  for (const std::string& p : intercept_) {
    if (host_matches(p, host)) return ForwardAction::kIntercept;
  }
  return ForwardAction::kTunnel;
}

ProxyAuthResult ForwardPolicy::authenticate(
    std::optional<std::string_view> proxy_authorization) const {
  using Status = ProxyAuthResult::Status;
  if (users_.empty()) return {Status::kOk, ""};
  if (!proxy_authorization) return {Status::kMissing, ""};
  auto credentials = parse_basic_credentials(*proxy_authorization);
  if (!credentials) return {Status::kWrong, ""};
  const std::string given_name = sha256_hex(credentials->first);
  const std::string given_password = sha256_hex(credentials->second);
  // Every user is compared, by fixed-size hashes, so the time taken says nothing about which
  // names exist or how much of a password was right.
  const User* match = nullptr;
  for (const User& u : users_) {
    const bool same_name =
        given_name.size() == u.name_sha256.size() &&
        CRYPTO_memcmp(given_name.data(), u.name_sha256.data(), given_name.size()) == 0;
    const bool same_password =
        given_password.size() == u.password_sha256.size() &&
        CRYPTO_memcmp(given_password.data(), u.password_sha256.data(), given_password.size()) == 0;
    if (same_name & same_password) match = &u;
  }
  if (match == nullptr) return {Status::kWrong, ""};
  return {Status::kOk, match->name};
}

}  // namespace lp
