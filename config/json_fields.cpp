// JSON configuration file reading: big-integer widening, loading, type names.
#include "config/json_fields.hpp"

#include <cstring>
#include <fstream>
#include <sstream>

namespace troupe::config {

namespace fs = std::filesystem;
using simdjson::dom::element;
using simdjson::dom::element_type;

const char* json_type_name(element_type t) {
  switch (t) {
    case element_type::ARRAY: return "an array";
    case element_type::OBJECT: return "an object";
    case element_type::INT64:
    case element_type::UINT64: return "an integer";
    case element_type::DOUBLE: return "a number";
    case element_type::STRING: return "a string";
    case element_type::BOOL: return "a boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "?";
}

std::string widen_big_integers(const std::string& in) {
  std::string out;
  out.reserve(in.size() + 16);
  bool in_string = false;
  for (size_t i = 0; i < in.size();) {
    char c = in[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < in.size()) out += in[++i];
      else if (c == '"') in_string = false;
      ++i;
    } else if (c == '"') {
      in_string = true;
      out += c;
      ++i;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t j = i, digits = 0;
      bool integral = true;
      for (; j < in.size() && std::strchr("-+0123456789.eE", in[j]) && in[j] != '\0'; ++j) {
        if (in[j] >= '0' && in[j] <= '9') ++digits;
        else if (in[j] == '.' || in[j] == 'e' || in[j] == 'E') integral = false;
      }
      out.append(in, i, j - i);
      if (integral && digits > 19) out += ".0";
      i = j;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

expected<void> load_json(json_file& f, const fs::path& path) {
  f.path = path;
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path, ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  simdjson::padded_string text(widen_big_integers(ss.str()));
  element doc;
  if (auto err = f.parser.parse(text).get(doc))
    return make_error(path, ": not valid JSON (", simdjson::error_message(err), ")");
  if (doc.get_object().get(f.root)) return make_error(path, ": the top level is not a JSON object");
  return {};
}

}  // namespace troupe::config
