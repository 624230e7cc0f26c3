// A tokenizer actor: one of a small pool that turns prompt text into token ids.
#pragma once

#include <cstddef>

#include "actors/messages.hpp"

namespace troupe::actors {

struct runtime_shared;

/// Spawns tokenizer actor `index` of the pool (its load counter and mailbox slot are in `shared`).
tokenizer_actor spawn_tokenizer(caf::actor_system& sys, runtime_shared& shared, size_t index);

}  // namespace troupe::actors
