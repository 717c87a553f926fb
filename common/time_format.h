// Time as the log server stores and accepts it: microseconds since the Unix epoch (UTC),
// RFC 3339 text for the API and the index, and the `2006-01-02_15-04-05.000` stamp of file
// names. Pure functions; the proleptic Gregorian calendar, years 0000-9999.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lp {

// "2025-09-13T02:11:09Z", "2025-09-13T02:11:09.123456+02:00", "2025-09-13t02:11:09.5z",
// "2025-09-13 02:11:09Z" (space separator). Fractions beyond µs are truncated; second 60
// (a leap second) is accepted. Returns nullopt for anything else, including a missing offset.
std::optional<int64_t> parse_rfc3339_us(std::string_view text);

// "2025-09-13T02:11:09.123456Z" (always 6 fraction digits, UTC).
std::string format_rfc3339_us(int64_t us);
// The same into `buf` without allocating; returns the length (27 for years 0000-9999).
inline constexpr size_t kRfc3339UsCapacity = 48;
size_t format_rfc3339_us(int64_t us, char (&buf)[kRfc3339UsCapacity]);

// "2025-09-13_02-11-09.123" (UTC, milliseconds): the file name stamp.
std::string file_timestamp(int64_t us);
// "2025-09-13" (UTC): the day directory.
std::string day_directory(int64_t us);

// Wall clock now, µs since the epoch.
int64_t now_us();

}  // namespace lp
