// A HAR 1.2 validator for tests: the fields HAR 1.2 requires
// (http://www.softwareishard.com/blog/har-12-spec/) plus the rules Chrome DevTools' importer
// enforces (it throws otherwise), so a HAR the log server exports is known to load there.
//
// Checked: required fields and their JSON types; log.version "1.2"; objects where objects are
// required and entries/cookies/headers/queryString/params/pages as arrays; numeric fields are
// finite numbers; startedDateTime is an ISO 8601 date-time with a time zone; headersSize and
// bodySize are -1 or >= 0; timings send/wait/receive >= 0 and blocked/dns/connect/ssl -1 or
// >= 0; entry.time equals the sum of the non -1 timings (ssl is inside connect) within 0.01 ms;
// postData has text, and not both text and params; content.encoding is only "base64" and then
// the text is valid (padded, RFC 4648) base64; every field not in the spec starts with '_';
// each page has startedDateTime, id, title and a pageTimings object.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lp::test {

// Every problem found, each "<json path>: <what is wrong>", e.g.
// "log.entries[0].response.content.size: must be a number". Empty means valid.
std::vector<std::string> validate_har(const nlohmann::json& har);

}  // namespace lp::test
