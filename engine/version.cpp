// The engine's version string.
#include "engine/version.hpp"

namespace troupe::engine {

const char* version() { return "0.1.0"; }

}  // namespace troupe::engine
