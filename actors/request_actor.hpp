// The request actor: one per request. It tokenises the prompt through the pool, asks the scheduler
// to admit it, then turns the scheduler's token updates into stream events (detokenising, matching
// stop strings, recording latencies) until every sample has finished.
#pragma once

#include <future>
#include <memory>

#include "actors/messages.hpp"
#include "actors/runtime.hpp"

namespace troupe::actors {

struct runtime_shared;
class stream_impl;

/// Spawns the actor of request `id`; `admitted` gets the scheduler's answer (or the tokenizer's error).
request_actor spawn_request(caf::actor_system& sys, runtime_shared& shared, std::shared_ptr<stream_impl> stream,
                            submit_request request, int64_t id, int64_t submit_ns,
                            std::shared_ptr<std::promise<status_reply>> admitted);

}  // namespace troupe::actors
