// Helpers the HTTP handlers share: OpenAI error answers (with Retry-After on 429).
#pragma once

#include <string>

#include <httplib.h>

#include "net/protocol.hpp"

namespace troupe::net {

/// Answers `e` as {"error": {...}} with its status; a 429 carries Retry-After: retry_after_s.
inline void write_error(httplib::Response& res, const api_error& e, int retry_after_s = 1) {
  res.status = e.status;
  if (e.status == 429) res.set_header("Retry-After", std::to_string(retry_after_s));
  res.set_content(to_json(e), "application/json");
}

}  // namespace troupe::net
