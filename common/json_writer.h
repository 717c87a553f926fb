// A small JSON object writer for the capture frames' metadata: appends straight into a
// caller's (reused) std::string, no DOM, no allocation of its own. Its output is byte for byte
// what nlohmann::json's dump(-1, ' ', false, error_handler_t::replace) gives for the same
// object, so the log server reads it unchanged: keys must be written in the order nlohmann
// sorts them (std::map, bytewise) and need no escaping, string values are escaped the same way and
// invalid UTF-8 becomes U+FFFD by the same rules (tests/unit/test_json_writer.cc proves it, value
// by value).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lp {

// Appends `s` as a JSON string literal (quotes included), exactly as nlohmann's dump with
// ensure_ascii=false and error_handler_t::replace does.
void append_json_string(std::string* out, std::string_view s);

class JsonObjectWriter {
 public:
  // Appends '{'; close() appends the matching '}'.
  explicit JsonObjectWriter(std::string* out) : out_(out) { out_->push_back('{'); }
  JsonObjectWriter(const JsonObjectWriter&) = delete;
  JsonObjectWriter& operator=(const JsonObjectWriter&) = delete;

  void field(std::string_view key, std::string_view value) {
    key_(key);
    append_json_string(out_, value);
  }
  void field(std::string_view key, const char* value) { field(key, std::string_view(value)); }
  void field(std::string_view key, int64_t value);
  void field(std::string_view key, uint64_t value);
  void field(std::string_view key, int value) { field(key, static_cast<int64_t>(value)); }
  // Opens a nested object under `key`; write its fields, then close_object().
  void open_object(std::string_view key) {
    key_(key);
    out_->push_back('{');
    first_ = true;
  }
  void close_object() {
    out_->push_back('}');
    first_ = false;
  }
  void close() { out_->push_back('}'); }

 private:
  // Keys are the caller's constants (plain ASCII, nothing to escape): written as they are.
  void key_(std::string_view key) {
    if (!first_) out_->push_back(',');
    first_ = false;
    out_->push_back('"');
    out_->append(key);
    out_->append("\":", 2);
  }

  std::string* out_;
  bool first_ = true;
};

}  // namespace lp
