// The /requests page cursor: an opaque string naming the last row of a page by its sort key
// (started_us, id). Pagination is keyset-based ("rows sorting before this key"), so a page
// boundary stays put while new exchanges arrive. Encoding: base64url (no padding) of
// "STARTED_US.ID"; clients must treat it as opaque.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lp::logsrv {

struct Cursor {
  int64_t started_us = 0;
  std::string id;
  bool operator==(const Cursor&) const = default;
};

std::string encode_cursor(const Cursor& cursor);
// nullopt for anything encode_cursor could not have produced (bad base64url, missing dot,
// a number out of range or not in canonical form, an id that is not 1-36 characters of
// [0-9a-f-]): decode_cursor(t) succeeds only when encode_cursor of the result is t again.
std::optional<Cursor> decode_cursor(std::string_view text);

}  // namespace lp::logsrv
