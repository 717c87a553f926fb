// How an exchange looks in the API: the summary object of GET /requests, and the full record
// of GET /requests/{id} (the summary plus headers, files, µs timings and provenance).
// Durations are milliseconds (µs precision) in the summary, null while unknown. Keys keep
// their insertion order (ordered_json) so records read naturally.
#pragma once

#include <nlohmann/json.hpp>

#include "common/http_message.h"
#include "log-server/index_schema.h"

namespace lp::logsrv {

nlohmann::ordered_json summary_json(const ExchangeRow& row);
// `request_head` / `response_head`: the heads read back from the files (nullopt: none yet).
nlohmann::ordered_json detail_json(const ExchangeRow& row,
                                   const std::optional<StoredHead>& request_head,
                                   const std::optional<StoredHead>& response_head);

// Serializes for a response body: compact, invalid UTF-8 replaced (never throws on bytes).
std::string dump_json(const nlohmann::ordered_json& j);

}  // namespace lp::logsrv
