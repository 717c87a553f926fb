// What the forward proxy does with a CONNECT: which hosts it intercepts (TLS terminated with a
// leaf from the local CA, exchanges captured) and which it tunnels untouched, and whether the
// client's Proxy-Authorization: Basic names a configured user. Pure logic, no I/O; the one read
// of the environment (users' password_env) happens in create(), at startup.
// A ForwardPolicy is immutable once built: every method is safe from any thread at once, and a
// reload builds a new one.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/config.h"

namespace lp {

// Whether `host` (no port; any case; one trailing dot ignored) matches a pattern that passed
// host_pattern_problem(): equal to an exact pattern, a subdomain at any depth of "*.domain", or
// the same address as an IP literal pattern ("::1" is "[0:0::1]").
bool host_matches(std::string_view pattern, std::string_view host);

enum class ForwardAction { kIntercept, kTunnel };

struct ProxyAuthResult {
  enum class Status {
    kOk,       // a configured user with the right password, or no users configured
    kMissing,  // no Proxy-Authorization header: answer 407 with a challenge
    kWrong,    // present but not Basic, malformed, unknown user or wrong password
  };
  Status status = Status::kMissing;
  std::string user;  // kOk with users configured: whose credentials they were
};

// "Basic base64(user:password)" (scheme in any case) -> {user, password}; nullopt otherwise.
std::optional<std::pair<std::string, std::string>> parse_basic_credentials(std::string_view value);

// Lowercase hex of SHA-256(text), the form forward_proxy.users[].password_sha256 is written in.
std::string sha256_hex(std::string_view text);

class ForwardPolicy {
 public:
  // Looks an environment variable up; nullptr when it is unset.
  using EnvLookup = std::function<const char*(const std::string&)>;

  // Reads each user's password_env through `lookup` (empty: std::getenv) and keeps only its
  // hash. nullptr with *error naming the user and the variable when one is unset or empty.
  static std::unique_ptr<ForwardPolicy> create(const ForwardProxyConfig& config, std::string* error,
                                               const EnvLookup& lookup = {});

  // kTunnel when an exclude pattern matches, else kIntercept when an intercept pattern does,
  // else kTunnel: a host nobody listed is never intercepted.
  ForwardAction decide(std::string_view host) const;

  bool requires_auth() const { return !users_.empty(); }
  // `proxy_authorization`: the header's value, nullopt when the request has none. Names and
  // password hashes are compared in constant time, against every user.
  ProxyAuthResult authenticate(std::optional<std::string_view> proxy_authorization) const;

 private:
  struct User {
    std::string name;
    std::string name_sha256;      // lowercase hex, so names compare in constant time too
    std::string password_sha256;  // lowercase hex
  };
  ForwardPolicy() = default;

  std::vector<std::string> intercept_;
  std::vector<std::string> exclude_;
  std::vector<User> users_;
};

}  // namespace lp
