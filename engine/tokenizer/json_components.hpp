// Small readers for tokenizer.json values and its normaliser, pre-tokenizer and decoder sections.
#pragma once

#include <simdjson.h>

#include <optional>
#include <string>
#include <string_view>

#include "config/error.hpp"
#include "engine/tokenizer/decoder.hpp"
#include "engine/tokenizer/normalizer.hpp"
#include "engine/tokenizer/pre_tokenizer.hpp"

namespace troupe::engine::tok {

using simdjson::dom::element;
using simdjson::dom::object;

bool is_null(element e);
/// The value at key, or nothing when it is missing or null.
std::optional<element> field(object o, std::string_view key);
expected<std::string> str_field(object o, std::string_view key, std::string def = {});
bool bool_field(object o, std::string_view key, bool def);
int64_t int_field(object o, std::string_view key, int64_t def);
expected<object> as_object(element e, std::string_view what);
/// The "type" field, or "" when absent.
std::string type_of(object o);
/// A {"String": ...} or {"Regex": ...} pattern field; sets is_regex.
expected<std::string> pattern_field(object o, bool& is_regex);

expected<normalizer> parse_normalizer(element e);
expected<pre_tokenizer> parse_pre_tokenizer(element e);
expected<decoder> parse_decoder(element e);

}  // namespace troupe::engine::tok
