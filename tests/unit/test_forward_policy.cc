#include "proxy/forward_policy.h"

#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <string>

#include "common/host_pattern.h"

namespace {

constexpr const char* kSecretSha256 =
    "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";  // "secret"

lp::ForwardProxyConfig policy_config() {
  lp::ForwardProxyConfig c;
  c.intercept = {"api.openai.com", "*.anthropic.com", "10.0.0.7", "::1"};
  c.exclude = {"files.anthropic.com"};
  return c;
}

}  // namespace

TEST_CASE("host patterns: which are valid") {
  struct Case {
    const char* pattern;
    const char* problem;  // nullptr: valid; else a substring of the problem
  };
  const Case cases[] = {
      {"api.openai.com", nullptr},
      {"API.OpenAI.com.", nullptr},
      {"*.openai.com", nullptr},
      {"localhost", nullptr},
      {"my_host.internal", nullptr},
      {"127.0.0.1", nullptr},
      {"::1", nullptr},
      {"[::1]", nullptr},
      {"2001:db8::1", nullptr},
      {"", "is empty"},
      {"api .openai.com", "contains a space"},
      {"https://api.openai.com", "has a scheme"},
      {"api.openai.com/v1", "has a path"},
      {"api.openai.com:443", "has a port"},
      {"127.0.0.1:8080", "has a port"},
      {"*", "has a '*' other than a leading"},
      {"*.", "has a '*' other than a leading"},
      {"*.com.", nullptr},
      {"api.*.com", "has a '*' other than a leading"},
      {"*api.openai.com", "has a '*' other than a leading"},
      {"*.*.openai.com", "has a '*' other than a leading"},
      {"a..b", "is not a host name"},
      {".openai.com", "is not a host name"},
      {"a\x01.com", "control character"},
      {"bad!host", "is not a host name"},
      {"[1.2.3.4]", "is not a host name"},
      {"[api.openai.com]", "is not a host name"},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.pattern));
    std::optional<std::string> problem = lp::host_pattern_problem(c.pattern);
    if (c.problem == nullptr) {
      CHECK_FALSE(problem.has_value());
    } else {
      REQUIRE(problem.has_value());
      CHECK_MESSAGE(problem->find(c.problem) != std::string::npos, *problem);
    }
  }
}

TEST_CASE("host_matches: exact, wildcard, IP, case and trailing dot") {
  struct Case {
    const char* pattern;
    const char* host;
    bool match;
  };
  const Case cases[] = {
      {"api.openai.com", "api.openai.com", true},
      {"api.openai.com", "API.OPENAI.COM", true},
      {"api.openai.com", "api.openai.com.", true},
      {"api.openai.com.", "api.openai.com", true},
      {"API.openai.com", "api.openai.com", true},
      {"api.openai.com", "openai.com", false},
      {"api.openai.com", "xapi.openai.com", false},
      {"api.openai.com", "api.openai.com.evil", false},
      {"api.openai.com", "api.openai.com..", false},
      {"*.openai.com", "api.openai.com", true},
      {"*.openai.com", "a.b.openai.com", true},
      {"*.openai.com", "API.OpenAI.COM.", true},
      {"*.openai.com", "openai.com", false},
      {"*.openai.com", "evilopenai.com", false},
      {"*.openai.com", "openai.com.evil", false},
      {"*.0.0.1", "127.0.0.1", false},
      {"127.0.0.1", "127.0.0.1", true},
      {"127.0.0.1", "127.0.0.2", false},
      {"::1", "::1", true},
      {"::1", "[::1]", true},
      {"[::1]", "0:0:0:0:0:0:0:1", true},
      {"2001:db8::1", "2001:DB8:0::1", true},
      {"::1", "::2", false},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.pattern));
    CAPTURE(std::string(c.host));
    CHECK(lp::host_matches(c.pattern, c.host) == c.match);
  }
  // An address followed by a NUL is not that address.
  CHECK_FALSE(lp::host_matches("127.0.0.1", std::string("127.0.0.1\0", 10)));
  CHECK_FALSE(lp::host_matches("::1", std::string("::1\0", 4)));
  CHECK_FALSE(lp::is_ip_literal(std::string("10.0.0.1\0x", 11)));
}

TEST_CASE("decide: exclude wins, unlisted hosts tunnel") {
  std::string error;
  auto policy = lp::ForwardPolicy::create(policy_config(), &error);
  REQUIRE(policy);
  struct Case {
    const char* host;
    lp::ForwardAction action;
  };
  const Case cases[] = {
      {"api.openai.com", lp::ForwardAction::kIntercept},
      {"Api.OpenAI.com.", lp::ForwardAction::kIntercept},
      {"api.anthropic.com", lp::ForwardAction::kIntercept},
      {"files.anthropic.com", lp::ForwardAction::kTunnel},
      {"anthropic.com", lp::ForwardAction::kTunnel},
      {"example.com", lp::ForwardAction::kTunnel},
      {"10.0.0.7", lp::ForwardAction::kIntercept},
      {"10.0.0.8", lp::ForwardAction::kTunnel},
      {"[::1]", lp::ForwardAction::kIntercept},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.host));
    CHECK(policy->decide(c.host) == c.action);
  }
}

TEST_CASE("decide: the default intercept list covers the providers") {
  std::string error;
  auto policy = lp::ForwardPolicy::create(lp::ForwardProxyConfig{}, &error);
  REQUIRE(policy);
  for (const char* host :
       {"api.openai.com", "api.anthropic.com", "openrouter.ai", "generativelanguage.googleapis.com",
        "api.mistral.ai", "api.groq.com", "api.deepseek.com", "api.x.ai", "api.together.xyz",
        "api.fireworks.ai", "api.cohere.com", "api.perplexity.ai"}) {
    CAPTURE(std::string(host));
    CHECK(policy->decide(host) == lp::ForwardAction::kIntercept);
  }
  CHECK(policy->decide("github.com") == lp::ForwardAction::kTunnel);
  CHECK_FALSE(policy->requires_auth());
}

TEST_CASE("parse_basic_credentials") {
  struct Case {
    const char* value;
    std::optional<std::pair<std::string, std::string>> expected;
  };
  const Case cases[] = {
      {"Basic YWxpY2U6c2VjcmV0", std::make_pair("alice", "secret")},
      {"basic YWxpY2U6c2VjcmV0", std::make_pair("alice", "secret")},
      {"BASIC   YWxpY2U6c2VjcmV0  ", std::make_pair("alice", "secret")},
      {"Basic Ym9iOmh1bnRlcjI=", std::make_pair("bob", "hunter2")},
      {"Basic Ym9iOmh1bnRlcjI", std::make_pair("bob", "hunter2")},  // padding left off
      {"Basic YWxpY2U6", std::make_pair("alice", "")},
      {"Basic YWxpY2U6c2VjOnJldA==", std::make_pair("alice", "sec:ret")},
      {"Basic YWxpY2VzZWNyZXQ=", std::nullopt},  // no colon
      {"Basic YWxp*2U6", std::nullopt},          // not base64
      {"Basic Y", std::nullopt},                 // truncated
      {"Bearer YWxpY2U6c2VjcmV0", std::nullopt},
      {"BasicYWxpY2U6c2VjcmV0", std::nullopt},
      {"", std::nullopt},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.value));
    CHECK(lp::parse_basic_credentials(c.value) == c.expected);
  }
}

TEST_CASE("sha256_hex") {
  CHECK(lp::sha256_hex("secret") == kSecretSha256);
  CHECK(lp::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("authenticate: ok, missing, wrong") {
  lp::ForwardProxyConfig config;
  config.users = {{"alice", kSecretSha256, ""}, {"bob", "", "LP_TEST_BOB_PASSWORD"}};
  const std::map<std::string, std::string> env = {{"LP_TEST_BOB_PASSWORD", "hunter2"}};
  std::string error;
  auto policy =
      lp::ForwardPolicy::create(config, &error, [&](const std::string& name) -> const char* {
        auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
      });
  REQUIRE_MESSAGE(policy, error);
  CHECK(policy->requires_auth());
  using Status = lp::ProxyAuthResult::Status;
  struct Case {
    std::optional<std::string_view> header;
    Status status;
    const char* user;
  };
  const Case cases[] = {
      {"Basic YWxpY2U6c2VjcmV0", Status::kOk, "alice"},  // alice:secret
      {"Basic Ym9iOmh1bnRlcjI=", Status::kOk, "bob"},    // bob:hunter2, from the environment
      {std::nullopt, Status::kMissing, ""},
      {"Basic YWxpY2U6", Status::kWrong, ""},              // alice with no password
      {"Basic Ym9iOmh1bnRlcjM=", Status::kWrong, ""},      // bob:hunter3
      {"Basic YWxpY2U6aHVudGVyMg==", Status::kWrong, ""},  // alice:hunter2 (bob's password)
      {"Basic Y2Fyb2w6c2VjcmV0", Status::kWrong, ""},      // carol:secret, no such user
      {"Bearer abc", Status::kWrong, ""},
      {"", Status::kWrong, ""},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.header.value_or("(none)")));
    const lp::ProxyAuthResult r = policy->authenticate(c.header);
    CHECK(r.status == c.status);
    CHECK(r.user == c.user);
  }
}

TEST_CASE("authenticate: without users everyone is let in") {
  std::string error;
  auto policy = lp::ForwardPolicy::create(lp::ForwardProxyConfig{}, &error);
  REQUIRE(policy);
  CHECK(policy->authenticate(std::nullopt).status == lp::ProxyAuthResult::Status::kOk);
  CHECK(policy->authenticate("Basic garbage").status == lp::ProxyAuthResult::Status::kOk);
}

TEST_CASE("create: an unset or empty password_env is an error naming user and variable") {
  lp::ForwardProxyConfig config;
  config.users = {{"bob", "", "LP_TEST_UNSET"}};
  std::string error;
  CHECK_FALSE(lp::ForwardPolicy::create(config, &error,
                                        [](const std::string&) -> const char* { return nullptr; }));
  CHECK(error == "forward_proxy.users: user 'bob': environment variable LP_TEST_UNSET is not set");
  CHECK_FALSE(lp::ForwardPolicy::create(config, &error,
                                        [](const std::string&) -> const char* { return ""; }));
  CHECK(error == "forward_proxy.users: user 'bob': environment variable LP_TEST_UNSET is empty");
}
