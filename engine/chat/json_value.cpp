// JSON text to chat-template values (simdjson's DOM), keeping object key order.
#include <simdjson.h>

#include "engine/chat/chat_template.hpp"

namespace troupe::engine::chat {
namespace {

value convert(simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::ARRAY: {
      list_t l;
      simdjson::dom::array arr = e.get_array().value_unsafe();
      for (auto x : arr) l.push_back(convert(x));
      return value(std::move(l));
    }
    case simdjson::dom::element_type::OBJECT: {
      dict_t d;
      simdjson::dom::object obj = e.get_object().value_unsafe();
      for (auto field : obj) d.set(std::string(field.key), convert(field.value));
      return value(std::move(d));
    }
    case simdjson::dom::element_type::INT64: return value(int64_t(int64_t(e)));
    case simdjson::dom::element_type::UINT64: return value(double(uint64_t(e)));
    case simdjson::dom::element_type::DOUBLE: return value(double(e));
    case simdjson::dom::element_type::STRING: return value(std::string(std::string_view(e)));
    case simdjson::dom::element_type::BOOL: return value(bool(e));
    case simdjson::dom::element_type::NULL_VALUE: return value::none();
  }
  return value::none();
}

}  // namespace

expected<value> value_from_json(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element root;
  if (auto err = parser.parse(padded).get(root); err)
    return make_error("invalid JSON: ", simdjson::error_message(err));
  return convert(root);
}

}  // namespace troupe::engine::chat
