// The executor actor: one per device, on its own thread; owns the backend, the model's weights and
// KV memory (through engine::model_runner), and runs the scheduler's step plans.
#pragma once

#include <string>

#include "actors/messages.hpp"

namespace troupe::actors {

struct runtime_shared;

/// Spawns a detached executor. It loads the model when it gets init_atom (so that a slow load
/// does not block the spawner) and dies on an exception from its backend, which its monitor sees.
executor_actor spawn_executor(caf::local_actor* parent, runtime_shared& shared, const std::string& name);

}  // namespace troupe::actors
