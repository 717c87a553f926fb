#include "common/time_format.h"

#include <chrono>
#include <cstdio>

namespace lp {

namespace {

constexpr int64_t kUsPerSecond = 1000000;
constexpr int64_t kSecondsPerDay = 86400;

// Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

struct Civil {
  int64_t year;
  unsigned month, day;
};

Civil civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

bool is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Reads exactly n digits at text[pos]; advances pos.
bool digits(std::string_view text, size_t& pos, size_t n, int64_t* out) {
  if (pos + n > text.size()) return false;
  int64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += n;
  *out = v;
  return true;
}

bool expect(std::string_view text, size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) return false;
  ++pos;
  return true;
}

struct Broken {
  int64_t year;
  unsigned month, day, hour, minute, second, micro;
};

Broken split(int64_t us) {
  int64_t secs = us >= 0 ? us / kUsPerSecond : -((-us + kUsPerSecond - 1) / kUsPerSecond);
  int64_t micro = us - secs * kUsPerSecond;
  int64_t days =
      secs >= 0 ? secs / kSecondsPerDay : -((-secs + kSecondsPerDay - 1) / kSecondsPerDay);
  int64_t sod = secs - days * kSecondsPerDay;
  Civil c = civil_from_days(days);
  return {c.year,
          c.month,
          c.day,
          static_cast<unsigned>(sod / 3600),
          static_cast<unsigned>(sod % 3600 / 60),
          static_cast<unsigned>(sod % 60),
          static_cast<unsigned>(micro)};
}

}  // namespace

std::optional<int64_t> parse_rfc3339_us(std::string_view t) {
  size_t pos = 0;
  int64_t year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(t, pos, 4, &year) || !expect(t, pos, '-') || !digits(t, pos, 2, &month) ||
      !expect(t, pos, '-') || !digits(t, pos, 2, &day)) {
    return std::nullopt;
  }
  if (pos >= t.size() || (t[pos] != 'T' && t[pos] != 't' && t[pos] != ' ')) return std::nullopt;
  ++pos;
  if (!digits(t, pos, 2, &hour) || !expect(t, pos, ':') || !digits(t, pos, 2, &minute) ||
      !expect(t, pos, ':') || !digits(t, pos, 2, &second)) {
    return std::nullopt;
  }
  int64_t micro = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    size_t start = pos;
    int64_t scale = 100000;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      micro += (t[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) return std::nullopt;
  }
  int64_t offset_s = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    int sign = t[pos] == '-' ? -1 : 1;
    ++pos;
    int64_t oh, om;
    if (!digits(t, pos, 2, &oh) || !expect(t, pos, ':') || !digits(t, pos, 2, &om)) {
      return std::nullopt;
    }
    if (oh > 23 || om > 59) return std::nullopt;
    offset_s = sign * (oh * 3600 + om * 60);
  } else {
    return std::nullopt;
  }
  if (pos != t.size()) return std::nullopt;
  if (month < 1 || month > 12) return std::nullopt;
  if (day < 1 || day > days_in_month(year, static_cast<unsigned>(month))) return std::nullopt;
  if (hour > 23 || minute > 59 || second > 60) return std::nullopt;

  int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  int64_t secs = days * kSecondsPerDay + hour * 3600 + minute * 60 + second - offset_s;
  return secs * kUsPerSecond + micro;
}

size_t format_rfc3339_us(int64_t us, char (&buf)[kRfc3339UsCapacity]) {
  const Broken b = split(us);
  if (b.year < 0 || b.year > 9999) {
    return static_cast<size_t>(std::snprintf(
        buf, sizeof buf, "%04lld-%02u-%02uT%02u:%02u:%02u.%06uZ", static_cast<long long>(b.year),
        b.month, b.day, b.hour, b.minute, b.second, b.micro));
  }
  // Digit by digit, not snprintf: the proxy formats one per captured exchange.
  auto put = [&buf](size_t at, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i, v /= 10) buf[at + i] = static_cast<char>('0' + v % 10);
  };
  put(0, static_cast<uint64_t>(b.year), 4);
  buf[4] = '-';
  put(5, b.month, 2);
  buf[7] = '-';
  put(8, b.day, 2);
  buf[10] = 'T';
  put(11, b.hour, 2);
  buf[13] = ':';
  put(14, b.minute, 2);
  buf[16] = ':';
  put(17, b.second, 2);
  buf[19] = '.';
  put(20, b.micro, 6);
  buf[26] = 'Z';
  buf[27] = '\0';
  return 27;
}

std::string format_rfc3339_us(int64_t us) {
  char buf[kRfc3339UsCapacity];
  return std::string(buf, format_rfc3339_us(us, buf));
}

std::string file_timestamp(int64_t us) {
  Broken b = split(us);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u_%02u-%02u-%02u.%03u",
                static_cast<long long>(b.year), b.month, b.day, b.hour, b.minute, b.second,
                b.micro / 1000);
  return buf;
}

std::string day_directory(int64_t us) {
  Broken b = split(us);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(b.year), b.month,
                b.day);
  return buf;
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace lp
