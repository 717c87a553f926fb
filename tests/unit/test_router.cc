#include "proxy/router.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

using lp::RouteMatch;
using lp::Router;
using lp::RouteSpec;
using Kind = RouteMatch::Kind;

// ---------------------------------------------------------------------------------------------
// Pattern parsing

struct ParseCase {
  const char* text;
  bool ok;
  const char* method;  // ok: expected fields; !ok: `path` holds a fragment of the error
  const char* host;
  const char* path;
  bool subtree;
};

const ParseCase kParseCases[] = {
    {"/", true, "", "", "/", true},
    {"/a", true, "", "", "/a", false},
    {"/a/", true, "", "", "/a/", true},
    {"/lmstudio/", true, "", "", "/lmstudio/", true},
    {"GET /a", true, "GET", "", "/a", false},
    {"GET\t/a/", true, "GET", "", "/a/", true},
    {"POST  \t example.com/x/", true, "POST", "example.com", "/x/", true},
    // Go trims blanks after the method, so trailing ones do not become part of the path.
    {"GET /a ", true, "GET", "", "/a", false},
    {"Example.COM/", true, "", "example.com", "/", true},
    {"[::1]/x", true, "", "::1", "/x", false},
    {"[2001:DB8::1]/", true, "", "2001:db8::1", "/", true},
    {"/a/{$}", true, "", "", "/a/", false},
    {"/{$}", true, "", "", "/", false},
    {"DELETE example.com/a/b/{$}", true, "DELETE", "example.com", "/a/b/", false},
    // Methods are case-sensitive tokens, as in Go: "get" is valid but matches only "get".
    {"get /x", true, "get", "", "/x", false},
    {"M-SEARCH /x", true, "M-SEARCH", "", "/x", false},
    // Escapes are how a pattern spells a literal brace; the path is kept as written.
    {"/%7B/%7D", true, "", "", "/%7B/%7D", false},
    {"/lm%73tudio/", true, "", "", "/lm%73tudio/", true},
    {"/a}", true, "", "", "/a}", false},

    {"", false, nullptr, nullptr, "empty pattern", false},
    {"A=B /", false, nullptr, nullptr, "invalid method \"A=B\"", false},
    {"GET(x) /", false, nullptr, nullptr, "invalid method", false},
    {"example.com", false, nullptr, nullptr, "missing path", false},
    {"GET example.com", false, nullptr, nullptr, "missing path", false},
    {" ", false, nullptr, nullptr, "missing path", false},
    {"/a/{x}", false, nullptr, nullptr, "wildcards other than {$} are not supported: {x}", false},
    {"/{rest...}", false, nullptr, nullptr, "wildcards other than {$} are not supported: {rest...}",
     false},
    {"/a/{}/", false, nullptr, nullptr, "wildcards other than {$} are not supported: {}", false},
    {"/{$}/", false, nullptr, nullptr, "{$} must be the last segment", false},
    {"/{$}/x", false, nullptr, nullptr, "{$} must be the last segment", false},
    {"/x{w}", false, nullptr, nullptr, "must start with '{'", false},
    {"/{w}x", false, nullptr, nullptr, "must end with '}'", false},
    {"/{wx", false, nullptr, nullptr, "must end with '}'", false},
    {"{a}/b", false, nullptr, nullptr, "missing initial '/'", false},
    {"GET //", false, nullptr, nullptr, "is not clean", false},
    {"/a/../b", false, nullptr, nullptr, "is not clean", false},
    {"/a/./", false, nullptr, nullptr, "is not clean", false},
    {"/a/.", false, nullptr, nullptr, "is not clean", false},
    {"example.com:8080/", false, nullptr, nullptr, "has a port", false},
    {"[::1]:8080/", false, nullptr, nullptr, "has a port", false},
    {"[::1/", false, nullptr, nullptr, "unterminated IPv6", false},
};

TEST_CASE("parse_pattern accepts Go 1.22 literal patterns and rejects the rest") {
  for (const ParseCase& c : kParseCases) {
    CAPTURE(c.text);
    std::string error;
    std::optional<lp::Pattern> p = lp::parse_pattern(c.text, &error);
    REQUIRE(p.has_value() == c.ok);
    if (c.ok) {
      CHECK(error.empty());
      CHECK(p->raw == c.text);
      CHECK(p->method == c.method);
      CHECK(p->host == c.host);
      CHECK(p->path == c.path);
      CHECK(p->subtree == c.subtree);
    } else {
      CAPTURE(error);
      CHECK(error.find(c.path) != std::string::npos);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Router construction: identical and conflicting patterns

struct BuildCase {
  std::vector<RouteSpec> routes;
  const char* error_route;  // nullptr: the routes are accepted
  const char* message;      // exact RouteError message
};

const BuildCase kBuildCases[] = {
    {{{"a", "/a/"}, {"ab", "/a/b/"}}, nullptr, nullptr},
    {{{"other", "/a/b/"}, {"get_a", "GET /a/"}},
     "get_a",
     "pattern \"GET /a/\" conflicts with route 'other' (\"/a/b/\"): both match GET /a/b/ and "
     "neither is more specific"},
    // Go's rule 1: a pattern with a host beats one without, so they never conflict.
    {{{"host", "example.com/a/"}, {"plain", "/a/"}}, nullptr, nullptr},
    {{{"h1", "a.com/x"}, {"h2", "b.com/x"}}, nullptr, nullptr},
    {{{"x", "/a/"}, {"y", "/a/"}}, "y", "pattern \"/a/\" is identical to route 'x'"},
    // Patterns are compared after unescaping, host case and IPv6 brackets are normalised.
    {{{"x", "/a/"}, {"y", "/%61/"}}, "y", "pattern \"/%61/\" is identical to route 'x' (\"/a/\")"},
    {{{"x", "Example.com/x"}, {"y", "example.com/x"}},
     "y",
     "pattern \"example.com/x\" is identical to route 'x' (\"Example.com/x\")"},
    {{{"x", "[::1]/x"}, {"y", "::1/x"}},
     "y",
     "pattern \"::1/x\" is identical to route 'x' (\"[::1]/x\")"},
    {{{"x", "GET /x"}, {"y", "GET /x"}}, "y", "pattern \"GET /x\" is identical to route 'x'"},
    {{{"x", "GET /x"}, {"y", "POST /x"}}, nullptr, nullptr},
    {{{"x", "GET /x"}, {"y", "HEAD /x"}}, nullptr, nullptr},
    {{{"x", "/x"}, {"y", "GET /x"}}, nullptr, nullptr},
    {{{"x", "/"}, {"y", "GET /a/"}}, nullptr, nullptr},
    {{{"x", "/a/{$}"}, {"y", "/a/"}, {"z", "/a"}}, nullptr, nullptr},
    {{{"x", "HEAD /a/"}, {"y", "GET /a/b"}},
     "y",
     "pattern \"GET /a/b\" conflicts with route 'x' (\"HEAD /a/\"): both match HEAD /a/b and "
     "neither is more specific"},
    {{{"x", "GET /"}, {"y", "/{$}"}},
     "y",
     "pattern \"/{$}\" conflicts with route 'x' (\"GET /\"): both match GET / and neither is "
     "more specific"},
    {{{"x", "POST /a/"}, {"y", "/a/b"}},
     "y",
     "pattern \"/a/b\" conflicts with route 'x' (\"POST /a/\"): both match POST /a/b and neither "
     "is more specific"},
    {{{"x", "GET example.com/"}, {"y", "example.com/a/"}},
     "y",
     "pattern \"example.com/a/\" conflicts with route 'x' (\"GET example.com/\"): both match GET "
     "example.com/a/ and neither is more specific"},
    {{{"x", "GET /"}, {"y", "other.com/a/"}}, nullptr, nullptr},
    {{{"ok", "/"}, {"bad", "/a/{x}"}},
     "bad",
     "invalid pattern \"/a/{x}\": wildcards other than {$} are not supported: {x}"},
    {{{"bad", ""}}, "bad", "invalid pattern \"\": empty pattern"},
};

TEST_CASE("Router rejects identical and conflicting patterns, naming both routes") {
  int n = 0;
  for (const BuildCase& c : kBuildCases) {
    CAPTURE(n++);
    if (!c.error_route) {
      CHECK_NOTHROW(Router{c.routes});
      continue;
    }
    try {
      Router router(c.routes);
      FAIL("expected a RouteError");
    } catch (const lp::RouteError& e) {
      CHECK(e.route() == c.error_route);
      CHECK(std::string(e.what()) == c.message);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Request matching

const std::vector<RouteSpec> kSeed = {
    {"openrouter", "/api/v1/"},
    {"lmstudio", "/lmstudio/"},
    {"catchall", "/"},
};

const std::vector<RouteSpec> kNoCatchAll = {
    {"openrouter", "/api/v1/"},
    {"lmstudio", "/lmstudio/"},
};

const std::vector<RouteSpec> kExactAndSubtree = {
    {"models", "/v1/models"},         {"v1", "/v1/"},       {"chat_root", "/v1/chat/{$}"},
    {"chat", "/v1/chat/completions"}, {"deep", "/v1/a/b/"},
};

const std::vector<RouteSpec> kMethods = {
    {"list", "GET /items/"},
    {"create", "POST /items/new"},
    {"ping_head", "HEAD /ping"},
    {"status", "GET /status"},
    {"any", "/any"},
    {"any_put", "PUT /any"},
};

// Same path, different methods: the request's own method beats GET-serving-HEAD beats any.
const std::vector<RouteSpec> kMethodPrecedence = {
    {"get_x", "GET /x"}, {"head_x", "HEAD /x"},   {"any_x", "/x"},
    {"p_any", "/p/"},    {"p_get_q", "GET /p/q"},
};

const std::vector<RouteSpec> kHosts = {
    {"ex_all", "example.com/"},
    {"ex_api", "example.com/api/"},
    {"api", "/api/"},
    {"root", "/"},
    {"apiex_get", "GET api.example.com/v1/"},
    {"v6", "[::1]/local/"},
};

const std::vector<RouteSpec> kAnchoredRoot = {
    {"home", "/{$}"},
    {"post_home", "POST /{$}"},
    {"static", "/static/"},
};

const std::vector<RouteSpec> kEscaped = {
    {"esc_api", "/%61pi/"},
    {"slash_lit", "/a%2Fb"},
    {"pct", "/%x"},
};

struct MatchCase {
  const std::vector<RouteSpec>* routes;
  const char* method;
  const char* host;
  const char* path;
  const char* query;
  Kind kind;
  const char* want;  // route name, redirect location, Allow value, or "" for 404
};

const MatchCase kMatchCases[] = {
    // The seed configuration.
    {&kSeed, "POST", "localhost:5601", "/api/v1/chat/completions", "", Kind::kRoute, "openrouter"},
    {&kSeed, "POST", "localhost", "/lmstudio/v1/chat/completions", "x=1", Kind::kRoute, "lmstudio"},
    {&kSeed, "GET", "localhost", "/lmstudio/", "", Kind::kRoute, "lmstudio"},
    {&kSeed, "GET", "localhost", "/lmstudio", "", Kind::kRedirect, "/lmstudio/"},
    {&kSeed, "GET", "localhost", "/lmstudio", "x=1&y=2", Kind::kRedirect, "/lmstudio/?x=1&y=2"},
    {&kSeed, "POST", "localhost", "/api/v1", "", Kind::kRedirect, "/api/v1/"},
    // "/api/" is not a pattern: "/" matching "/api/" below its root is no reason to redirect.
    {&kSeed, "GET", "localhost", "/api", "", Kind::kRoute, "catchall"},
    {&kSeed, "GET", "localhost", "/other/path", "", Kind::kRoute, "catchall"},
    {&kSeed, "GET", "localhost", "/", "", Kind::kRoute, "catchall"},
    {&kSeed, "GET", "", "/api/v1/models", "", Kind::kRoute, "openrouter"},
    // Segments are compared percent-decoded, one segment at a time.
    {&kSeed, "POST", "localhost", "/lm%73tudio/v1/x", "", Kind::kRoute, "lmstudio"},
    {&kSeed, "GET", "localhost", "/api%2Fv1/chat", "", Kind::kRoute, "catchall"},
    {&kSeed, "GET", "localhost", "/API/v1/x", "", Kind::kRoute, "catchall"},
    // Unclean paths redirect to their clean form, query kept.
    {&kSeed, "GET", "localhost", "//lmstudio/x", "", Kind::kRedirect, "/lmstudio/x"},
    {&kSeed, "GET", "localhost", "/api/v1/../../lmstudio/x", "q=1", Kind::kRedirect,
     "/lmstudio/x?q=1"},
    {&kSeed, "GET", "localhost", "/lmstudio/./v1", "", Kind::kRedirect, "/lmstudio/v1"},
    {&kSeed, "GET", "localhost", "/lmstudio/v1/.", "", Kind::kRedirect, "/lmstudio/v1"},
    {&kSeed, "GET", "localhost", "/lmstudio/v1/..", "", Kind::kRedirect, "/lmstudio/"},
    {&kSeed, "GET", "localhost", "/lmstudio/v1//", "", Kind::kRedirect, "/lmstudio/v1/"},
    {&kSeed, "GET", "localhost", "/../..", "", Kind::kRedirect, "/"},
    // Cleaning and the subtree-root slash are fixed by a single redirect.
    {&kSeed, "GET", "localhost", "/x/../lmstudio", "a=b", Kind::kRedirect, "/lmstudio/?a=b"},
    // Go does not canonicalise CONNECT paths.
    {&kSeed, "CONNECT", "localhost", "//lmstudio/x", "", Kind::kRoute, "catchall"},

    {&kNoCatchAll, "GET", "localhost", "/nothing", "", Kind::kNotFound, ""},
    {&kNoCatchAll, "GET", "localhost", "/", "", Kind::kNotFound, ""},
    // Go redirects unclean paths even when the clean one matches nothing.
    {&kNoCatchAll, "GET", "localhost", "//nothing", "", Kind::kRedirect, "/nothing"},
    {&kNoCatchAll, "GET", "localhost", "/lmstudio%2Fv1", "", Kind::kNotFound, ""},
    {&kNoCatchAll, "HEAD", "localhost", "/lmstudio", "", Kind::kRedirect, "/lmstudio/"},
    {&kNoCatchAll, "GET", "localhost", "/lm%73tudio", "", Kind::kRedirect, "/lm%73tudio/"},

    // Exact, subtree and {$}: the most specific wins.
    {&kExactAndSubtree, "GET", "h", "/v1/models", "", Kind::kRoute, "models"},
    {&kExactAndSubtree, "GET", "h", "/v1/models/", "", Kind::kRoute, "v1"},
    {&kExactAndSubtree, "GET", "h", "/v1/models/x", "", Kind::kRoute, "v1"},
    {&kExactAndSubtree, "GET", "h", "/v1/chat/", "", Kind::kRoute, "chat_root"},
    {&kExactAndSubtree, "GET", "h", "/v1/chat", "", Kind::kRedirect, "/v1/chat/"},
    {&kExactAndSubtree, "GET", "h", "/v1/chat/x", "", Kind::kRoute, "v1"},
    {&kExactAndSubtree, "POST", "h", "/v1/chat/completions", "", Kind::kRoute, "chat"},
    {&kExactAndSubtree, "GET", "h", "/v1/a/b/c", "", Kind::kRoute, "deep"},
    {&kExactAndSubtree, "GET", "h", "/v1/a/b", "", Kind::kRedirect, "/v1/a/b/"},
    {&kExactAndSubtree, "GET", "h", "/v1/a", "", Kind::kRoute, "v1"},
    {&kExactAndSubtree, "GET", "h", "/v1", "", Kind::kRedirect, "/v1/"},
    {&kExactAndSubtree, "GET", "h", "/v2", "", Kind::kNotFound, ""},

    // Methods: GET covers HEAD, HEAD covers only HEAD, 405 lists what would match.
    {&kMethods, "GET", "h", "/items/1", "", Kind::kRoute, "list"},
    {&kMethods, "HEAD", "h", "/items/1", "", Kind::kRoute, "list"},
    {&kMethods, "POST", "h", "/items/new", "", Kind::kRoute, "create"},
    {&kMethods, "GET", "h", "/items/new", "", Kind::kRoute, "list"},
    {&kMethods, "POST", "h", "/items/1", "", Kind::kMethodNotAllowed, "GET, HEAD"},
    {&kMethods, "DELETE", "h", "/items/new", "", Kind::kMethodNotAllowed, "GET, HEAD, POST"},
    {&kMethods, "HEAD", "h", "/ping", "", Kind::kRoute, "ping_head"},
    {&kMethods, "GET", "h", "/ping", "", Kind::kMethodNotAllowed, "HEAD"},
    {&kMethods, "GET", "h", "/status", "", Kind::kRoute, "status"},
    {&kMethods, "HEAD", "h", "/status", "", Kind::kRoute, "status"},
    {&kMethods, "POST", "h", "/status", "", Kind::kMethodNotAllowed, "GET, HEAD"},
    {&kMethods, "PUT", "h", "/any", "", Kind::kRoute, "any_put"},
    {&kMethods, "PATCH", "h", "/any", "", Kind::kRoute, "any"},
    {&kMethods, "GET", "h", "/items", "", Kind::kRedirect, "/items/"},
    // The slash redirect only happens when the request's method matches the slashed path.
    {&kMethods, "POST", "h", "/items", "", Kind::kMethodNotAllowed, "GET, HEAD"},
    {&kMethods, "get", "h", "/status", "", Kind::kMethodNotAllowed, "GET, HEAD"},
    {&kMethods, "GET", "h", "/nothing", "", Kind::kNotFound, ""},

    {&kMethodPrecedence, "HEAD", "h", "/x", "", Kind::kRoute, "head_x"},
    {&kMethodPrecedence, "GET", "h", "/x", "", Kind::kRoute, "get_x"},
    {&kMethodPrecedence, "POST", "h", "/x", "", Kind::kRoute, "any_x"},
    {&kMethodPrecedence, "GET", "h", "/p/q", "", Kind::kRoute, "p_get_q"},
    {&kMethodPrecedence, "HEAD", "h", "/p/q", "", Kind::kRoute, "p_get_q"},
    {&kMethodPrecedence, "POST", "h", "/p/q", "", Kind::kRoute, "p_any"},

    // Hosts: a matching host pattern beats any host-less one; port and case are ignored.
    {&kHosts, "GET", "example.com", "/api/x", "", Kind::kRoute, "ex_api"},
    {&kHosts, "GET", "example.com:8080", "/api/x", "", Kind::kRoute, "ex_api"},
    {&kHosts, "GET", "EXAMPLE.com", "/anything", "", Kind::kRoute, "ex_all"},
    {&kHosts, "GET", "example.com", "/", "", Kind::kRoute, "ex_all"},
    {&kHosts, "GET", "other.com", "/api/x", "", Kind::kRoute, "api"},
    {&kHosts, "GET", "", "/api/x", "", Kind::kRoute, "api"},
    {&kHosts, "GET", "other.com:443", "/x", "", Kind::kRoute, "root"},
    {&kHosts, "GET", "example.com", "/api", "", Kind::kRedirect, "/api/"},
    {&kHosts, "GET", "api.example.com", "/v1/x", "", Kind::kRoute, "apiex_get"},
    // A host pattern that fails on the method falls through to host-less patterns.
    {&kHosts, "POST", "api.example.com", "/v1/x", "", Kind::kRoute, "root"},
    {&kHosts, "GET", "[::1]:8080", "/local/x", "", Kind::kRoute, "v6"},
    {&kHosts, "GET", "[::1]", "/local/x", "", Kind::kRoute, "v6"},
    {&kHosts, "GET", "[::1]:8080", "/other", "", Kind::kRoute, "root"},

    {&kAnchoredRoot, "GET", "h", "/", "", Kind::kRoute, "home"},
    {&kAnchoredRoot, "POST", "h", "/", "q", Kind::kRoute, "post_home"},
    {&kAnchoredRoot, "GET", "h", "/x", "", Kind::kNotFound, ""},
    {&kAnchoredRoot, "GET", "h", "/static", "v=2", Kind::kRedirect, "/static/?v=2"},
    {&kAnchoredRoot, "GET", "h", "/static/css/a.css", "", Kind::kRoute, "static"},

    // Escapes in patterns and requests.
    {&kEscaped, "GET", "h", "/api/x", "", Kind::kRoute, "esc_api"},
    {&kEscaped, "GET", "h", "/%61pi/x", "", Kind::kRoute, "esc_api"},
    {&kEscaped, "GET", "h", "/a%2Fb", "", Kind::kRoute, "slash_lit"},
    {&kEscaped, "GET", "h", "/a%2fb", "", Kind::kRoute, "slash_lit"},
    {&kEscaped, "GET", "h", "/a/b", "", Kind::kNotFound, ""},
    {&kEscaped, "GET", "h", "/%25x", "", Kind::kRoute, "pct"},
    {&kEscaped, "GET", "h", "/%x", "", Kind::kRoute, "pct"},
};

TEST_CASE("Router::match follows Go 1.22 ServeMux precedence, redirects and 405s") {
  for (const MatchCase& c : kMatchCases) {
    CAPTURE(c.method);
    CAPTURE(c.host);
    CAPTURE(c.path);
    CAPTURE(c.query);
    Router router(*c.routes);
    RouteMatch m = router.match(c.method, c.host, c.path, c.query);
    REQUIRE(m.kind == c.kind);
    switch (c.kind) {
      case Kind::kRoute:
        REQUIRE(m.route_index >= 0);
        CHECK((*c.routes)[m.route_index].name == c.want);
        CHECK(router.pattern(m.route_index).raw == (*c.routes)[m.route_index].pattern);
        break;
      case Kind::kRedirect:
        CHECK(m.location == c.want);
        CHECK(m.route_index == -1);
        break;
      case Kind::kMethodNotAllowed:
        CHECK(m.allow == c.want);
        break;
      case Kind::kNotFound:
        CHECK(m.route_index == -1);
        CHECK(m.location.empty());
        CHECK(m.allow.empty());
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Upstream targets

struct TargetCase {
  const char* pattern;
  const char* destination;
  const char* raw_path;
  const char* query;
  const char* want;
};

const TargetCase kTargetCases[] = {
    {"/lmstudio/", "http://127.0.0.1:1234/", "/lmstudio/v1/chat/completions", "x=1",
     "/v1/chat/completions?x=1"},
    {"/api/v1/", "https://openrouter.ai/api/v1/", "/api/v1/chat/completions", "",
     "/api/v1/chat/completions"},
    {"/", "http://h/", "/v1/chat", "", "/v1/chat"},
    {"/", "http://h", "/", "", "/"},
    {"/", "http://h/api", "/v1/x", "", "/api/v1/x"},
    {"/lmstudio/", "http://h/api/v1/", "/lmstudio/chat", "", "/api/v1/chat"},
    {"/lmstudio/", "http://h/", "/lmstudio/", "", "/"},
    {"/lmstudio/", "http://h/api", "/lmstudio/", "", "/api/"},
    // Segments are counted on the raw path; the client's escaping reaches upstream untouched.
    {"/lmstudio/", "http://h", "/lm%73tudio/v1/a%2Fb%20c", "", "/v1/a%2Fb%20c"},
    {"/a/b/", "http://h/x/", "/a/b/c/d/", "", "/x/c/d/"},
    {"/a%2Fb/", "http://h/", "/a%2fb/c", "", "/c"},
    {"GET example.com/api/", "http://h/", "/api/v1", "", "/v1"},
    {"/v1/models", "http://h/models?fmt=json", "/v1/models", "limit=5", "/models?fmt=json&limit=5"},
    {"/v1/models", "http://h/m?k=v", "/v1/models", "", "/m?k=v"},
    {"/v1/models", "http://h", "/v1/models", "", "/"},
    {"/v1/models", "http://h/exact/path/", "/v1/models", "a=%26", "/exact/path/?a=%26"},
    {"/v1/chat/{$}", "http://h/c/", "/v1/chat/", "a=1", "/c/?a=1"},
    {"/lmstudio/", "http://h/p?token=abc", "/lmstudio/v1", "stream=true&x=%20",
     "/p/v1?token=abc&stream=true&x=%20"},
};

TEST_CASE("upstream_target maps the request onto the destination, byte-exact") {
  for (const TargetCase& c : kTargetCases) {
    CAPTURE(c.pattern);
    CAPTURE(c.destination);
    CAPTURE(c.raw_path);
    std::string error;
    std::optional<lp::Pattern> p = lp::parse_pattern(c.pattern, &error);
    REQUIRE(p.has_value());
    std::optional<lp::Url> dest = lp::parse_url(c.destination, &error);
    REQUIRE(dest.has_value());
    CHECK(lp::upstream_target(*p, *dest, c.raw_path, c.query) == c.want);
  }
}

}  // namespace
