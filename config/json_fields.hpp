// Reading fields of JSON configuration files (config.json, tokenizer_config.json, ...) with errors
// that name the file and the field; used by the config loaders.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "config/error.hpp"

namespace troupe::config {

/// "an integer", "a string", ...: for messages about a value of the wrong type.
const char* json_type_name(simdjson::dom::element_type t);

/// simdjson 3.0 rejects integers beyond 64 bits, which Hugging Face writes (model_max_length
/// 1000000000000000019884624838656): outside strings, such literals become doubles.
std::string widen_big_integers(const std::string& in);

/// A parsed JSON file; owns the parser that the elements point into.
struct json_file {
  std::filesystem::path path;
  simdjson::dom::parser parser;
  simdjson::dom::object root;
};

/// Reads and parses path; the top level must be an object.
expected<void> load_json(json_file& f, const std::filesystem::path& path);

/// Reads fields of one JSON object; the first problem is kept (with file and field) and later
/// reads return their fallbacks, so a loader reads everything and checks failed() once.
class field_reader {
 public:
  field_reader(const std::filesystem::path& file, simdjson::dom::object obj, std::optional<error>* err, std::string prefix = "")
      : file_(file), obj_(obj), err_(err), prefix_(std::move(prefix)) {}

  /// The value, or nothing when the field is absent or null. With duplicate keys the last one
  /// counts, as in Python's json module.
  std::optional<simdjson::dom::element> find(std::string_view key) const {
    std::optional<simdjson::dom::element> found;
    for (auto field : obj_)
      if (field.key == key) found = field.value;
    if (found && found->is_null()) return std::nullopt;
    return found;
  }

  bool has(std::string_view key) const { return find(key).has_value(); }

  void fail(std::string_view key, const std::string& problem) {
    if (!*err_) *err_ = make_error(file_, ": field \"", prefix_, key, "\" ", problem);
  }

  std::optional<int64_t> opt_int(std::string_view key) {
    auto e = find(key);
    if (!e) return std::nullopt;
    if (e->is_int64()) return int64_t(*e);
    if (e->is_double()) {  // 4096.0 is fine; 4096.5 is not
      double d = double(*e);
      if (std::floor(d) == d && std::fabs(d) < 9.0e18) return int64_t(d);
    }
    if (e->is_uint64() || e->is_double()) fail(key, "is not an integer within range");
    else fail(key, std::string("must be an integer, found ") + json_type_name(e->type()));
    return std::nullopt;
  }

  int64_t req_int(std::string_view key) {
    if (!has(key)) fail(key, "is missing");
    return opt_int(key).value_or(0);
  }

  std::optional<double> opt_double(std::string_view key) {
    auto e = find(key);
    if (!e) return std::nullopt;
    if (e->is_number()) return double(*e);
    fail(key, std::string("must be a number, found ") + json_type_name(e->type()));
    return std::nullopt;
  }

  double req_double(std::string_view key) {
    if (!has(key)) fail(key, "is missing");
    return opt_double(key).value_or(0.0);
  }

  std::optional<bool> opt_bool(std::string_view key) {
    auto e = find(key);
    if (!e) return std::nullopt;
    if (e->is_bool()) return bool(*e);
    fail(key, std::string("must be true or false, found ") + json_type_name(e->type()));
    return std::nullopt;
  }

  std::optional<std::string> opt_string(std::string_view key) {
    auto e = find(key);
    if (!e) return std::nullopt;
    if (e->is_string()) return std::string(std::string_view(*e));
    fail(key, std::string("must be a string, found ") + json_type_name(e->type()));
    return std::nullopt;
  }

  /// A nested object field, read with "key." in front of its fields' names.
  std::optional<field_reader> opt_object(std::string_view key) {
    auto e = find(key);
    if (!e) return std::nullopt;
    if (!e->is_object()) {
      fail(key, std::string("must be an object, found ") + json_type_name(e->type()));
      return std::nullopt;
    }
    return field_reader(file_, simdjson::dom::object(*e), err_, prefix_ + std::string(key) + ".");
  }

  /// An integer or a list of integers (eos_token_id); absent or null gives an empty list.
  std::vector<int64_t> int_list(std::string_view key) {
    auto e = find(key);
    if (!e) return {};
    if (e->is_int64()) return {int64_t(*e)};
    std::vector<int64_t> out;
    if (e->is_array()) {
      for (simdjson::dom::element item : simdjson::dom::array(*e)) {
        if (!item.is_int64()) break;
        out.push_back(int64_t(item));
      }
      if (out.size() == simdjson::dom::array(*e).size()) return out;
    }
    fail(key, "must be an integer or a list of integers");
    return {};
  }

  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
  simdjson::dom::object obj_;
  std::optional<error>* err_;
  std::string prefix_;
};

}  // namespace troupe::config
