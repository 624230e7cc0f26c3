// What one scheduler step asks of the model runner: requests new to it in full, the others as diffs.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/core/request.hpp"
#include "engine/sampling/sampler.hpp"

namespace troupe::engine {

/// A request the runner has not seen since it was (re)admitted: everything it needs, once.
struct new_request_data {
  request_id id = 0;
  std::vector<int32_t> token_ids;  ///< prompt then the outputs so far (a resumed request has some)
  int32_t num_prompt_tokens = 0;
  sampling_params sampling;
  std::vector<int32_t> block_ids;  ///< its whole block table
  int32_t num_computed_tokens = 0; ///< tokens already in the cache (prefix-cache hit)
  int32_t logprobs = -1;           ///< see request_params
  int32_t prompt_logprobs = -1;
};

/// A request the runner already holds: only what changed since it was last scheduled. Its new
/// tokens are the ones the runner sampled for it (the runner appends them itself), so none are sent:
/// the next step may be planned before the scheduler knows them.
struct cached_request_data {
  request_id id = 0;
  std::vector<int32_t> new_block_ids;  ///< blocks appended to its table
  int32_t num_computed_tokens = 0;
};

/// One request's share of the step: tokens [num_computed_tokens, num_computed_tokens + num_tokens).
struct scheduled_request {
  request_id id = 0;
  int32_t num_tokens = 0;
  /// Whether these tokens reach the end of what the request knows, so that a token is sampled.
  bool samples = false;
};

/// One step. `scheduled` is the batch in order; each of its requests has exactly one entry in
/// new_requests or cached_requests. Steps are executed in the order they were planned.
struct schedule_output {
  uint64_t step = 0;
  std::vector<scheduled_request> scheduled;
  std::vector<new_request_data> new_requests;
  std::vector<cached_request_data> cached_requests;
  int32_t total_num_scheduled_tokens = 0;
  /// Preempted in this step: the runner forgets their block tables (they come back as new).
  std::vector<request_id> preempted_request_ids;
  /// Finished or aborted since the previous step: the runner forgets them entirely.
  std::vector<request_id> finished_request_ids;

  bool empty() const { return scheduled.empty(); }
};

}  // namespace troupe::engine
