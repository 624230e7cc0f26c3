// A small JSON text builder for the OpenAI responses: objects, arrays, escaped strings (invalid UTF-8
// becomes U+FFFD, so a response is always valid JSON), integers and shortest-round-trip numbers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::net {

/// Appends `s` to `out` as a JSON string literal (quotes included).
void append_json_string(std::string& out, std::string_view s);

/// `s` as a JSON string literal.
std::string json_quote(std::string_view s);

/// Builds one JSON document. Commas are placed automatically; keys are given before values in objects.
class json_writer {
 public:
  json_writer& begin_object();
  json_writer& end_object();
  json_writer& begin_array();
  json_writer& end_array();
  json_writer& key(std::string_view k);

  json_writer& value(std::string_view s);
  json_writer& value(const char* s) { return value(std::string_view(s)); }
  json_writer& value(const std::string& s) { return value(std::string_view(s)); }
  json_writer& value(int64_t i);
  json_writer& value(int32_t i) { return value(int64_t(i)); }
  json_writer& value(uint64_t u);
  /// Finite numbers in their shortest round-trip form; non-finite ones (a -inf logprob) as -9999.0,
  /// as vLLM writes them, since JSON has no infinity.
  json_writer& value(double d);
  json_writer& value(float f);
  json_writer& value(bool b);
  json_writer& null();
  /// Inserts already-encoded JSON as one value.
  json_writer& raw(std::string_view json);

  /// key(k).value(v) in one call.
  template <class T>
  json_writer& field(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void before_value();

  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  bool after_key_ = false;
};

}  // namespace troupe::net
