// The filters of GET /requests, parsed and validated from the query parameters. Every problem
// names the offending parameter (for the 400 answer); unknown, repeated or nameless
// parameters are problems too, so a typo never silently widens a query. Text filters are
// bound as values (literal text, never patterns) and may not hold control characters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "log-server/cursor.h"

namespace lp::logsrv {

inline constexpr int kDefaultLimit = 50;
inline constexpr int kMaxLimit = 1000;
inline constexpr size_t kMaxFilterChars = 1024;

struct ListQuery {
  std::optional<std::string> route;
  std::optional<std::string> method;     // upper-cased
  std::optional<int> status;             // 100..599
  std::optional<std::string> outcome;    // one of kOutcomes
  std::optional<int64_t> since_us;       // started_at >= since
  std::optional<int64_t> until_us;       // started_at < until
  std::optional<std::string> q;          // substring of proxy_path (case-sensitive)
  std::optional<std::string> replay_of;  // full id of the original capture
  std::optional<std::string> model;      // the derived LLM model (exact)
  std::optional<std::string> provider;   // the derived LLM provider (exact)
  int limit = kDefaultLimit;
  std::optional<Cursor> cursor;  // rows strictly after this one in the order
};

struct ParamError {
  std::string parameter;
  std::string message;
};

inline constexpr const char* kOutcomes[] = {"in_progress", "complete", "client_aborted",
                                            "upstream_error", "truncated"};
bool is_outcome(std::string_view s);

// How an endpoint takes the filters: /requests pages with limit and cursor; /stats has no
// limit; /export a larger one. `own` names parameters the endpoint parses itself (skipped
// here, but still refused when repeated or nameless).
struct QueryShape {
  bool limit = true;
  int default_limit = kDefaultLimit;
  int max_limit = kMaxLimit;
  bool cursor = true;
  std::vector<std::string> own;
};

// `params` as received (decoded name/value pairs, in order). Returns false with *error set.
bool parse_list_query(const std::vector<std::pair<std::string, std::string>>& params,
                      ListQuery* out, ParamError* error, const QueryShape& shape = {});

}  // namespace lp::logsrv
