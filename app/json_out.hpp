// JSON writers for the program's --json output: strings through the HTTP layer's escaping (invalid
// UTF-8 becomes U+FFFD, so the output is always valid JSON) and id arrays.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "net/json_writer.hpp"

namespace troupe::app {

/// `s` as a JSON string literal.
inline std::string json_string(std::string_view s) { return net::json_quote(s); }

/// `ids` as a JSON array of integers, e.g. [1,403,407].
inline std::string json_ids(std::span<const int32_t> ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  out += ']';
  return out;
}

}  // namespace troupe::app
