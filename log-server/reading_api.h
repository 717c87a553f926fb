// What the reading endpoints put together from an exchange's row and files: the decoded
// bodies, HAR 1.2 entries (the fields Chrome DevTools requires) and JSONL export lines.
// Does file I/O (through deriver.h); no HTTP. One exchange at a time: an export of any length
// holds at most one exchange's decoded bodies, each bounded by kMaxExportBody.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/http_message.h"
#include "log-server/blob_store.h"
#include "log-server/index_schema.h"

namespace lp::logsrv {

// A body in an export larger than this (decoded) is left out and says so.
inline constexpr uint64_t kMaxExportBody = 32ULL * 1024 * 1024;

struct DecodedBody {
  std::string bytes;                   // decoded (empty when none or left out)
  std::optional<std::string> problem;  // "gzip: ...", "larger than ...": bytes are not the body
};

struct LoadedExchange {
  std::optional<StoredHead> request_head;
  std::optional<StoredHead> response_head;
  DecodedBody request_body;
  DecodedBody response_body;
};

LoadedExchange load_exchange(const ExchangeRow& row, const BlobStore& store, uint64_t max_body);

bool is_valid_utf8(std::string_view s);
std::string base64(std::string_view bytes);

// `{"log": {"version": "1.2", "creator": ..., "entries": [` and its closing `]}}`.
std::string har_prefix(std::string_view version);
std::string har_suffix();
nlohmann::ordered_json har_entry(const ExchangeRow& row, const LoadedExchange& x);

// {"record": (as /requests/{id}), "request_body": JSON | text | {"base64": ...} | null,
//  "assembled": (as /assembled) | null}
nlohmann::ordered_json jsonl_record(const ExchangeRow& row, const LoadedExchange& x,
                                    const nlohmann::ordered_json& assembled);

}  // namespace lp::logsrv
