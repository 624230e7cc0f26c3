// The scheduler actor: owns engine::scheduler (queues, block tables, the prefix cache) and the
// executor it feeds; admits requests, plans steps, routes sampled tokens to request actors, aborts
// cancelled requests at once, and supervises its executor (restart and recompute, or fail).
#pragma once

#include "actors/messages.hpp"

namespace troupe::actors {

struct runtime_shared;

/// Restarts of a failed executor before the runtime gives up and fails every request.
inline constexpr int32_t max_executor_restarts = 3;

scheduler_actor spawn_scheduler(caf::actor_system& sys, runtime_shared& shared);

}  // namespace troupe::actors
