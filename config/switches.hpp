// Environment switches: measurement and fallback knobs read from the environment (the README lists them).
#pragma once

#include <cstdlib>
#include <string_view>

namespace troupe::config {

/// Whether the environment turns `name` off: the variable is set to "0" (TROUPE_PDL=0, ...).
inline bool switched_off(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::string_view(v) == "0";
}

}  // namespace troupe::config
