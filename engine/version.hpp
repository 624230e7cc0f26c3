// The engine's version string, printed by the program and reported by the server.
#pragma once

namespace troupe::engine {

/// troupe's version, e.g. "0.1.0".
const char* version();

}  // namespace troupe::engine
