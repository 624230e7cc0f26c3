// One generation request as the scheduler tracks it: tokens, progress, status, limits and stops.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampling/sampler.hpp"

namespace troupe::engine {

using request_id = int64_t;

/// Most top logprobs a request may ask for per token (OpenAI's top_logprobs limit).
inline constexpr int32_t max_logprobs = 20;

/// Where a request is. There is no prefill or decode phase: a running request is given tokens each
/// step until num_computed_tokens catches up with num_tokens.
enum class request_status {
  waiting,
  running,
  preempted,
  finished_stopped,
  finished_length,
  finished_aborted,
  finished_error,
};

/// Why a request finished, as the OpenAI API names it.
enum class finish_reason { none, stop, length, abort, error };

std::string_view to_string(request_status s);
/// "stop", "length", "abort", "error" ("" for none).
std::string_view to_string(finish_reason r);
/// The finish reason of a finished status (none for the others).
finish_reason reason_of(request_status s);

/// What a caller asks of one request besides its prompt.
struct request_params {
  sampling_params sampling;
  int64_t max_tokens = 16;                ///< output tokens at most
  std::vector<int32_t> stop_token_ids;    ///< finish (reason stop) when one is sampled
  std::vector<std::string> stop;          ///< stop strings (matched by the output_processor)
  bool ignore_eos = false;                ///< keep going past the model's end-of-sequence ids
  int32_t priority = 0;                   ///< lower is served first
  int32_t n = 1;                          ///< parallel samples (fanned out into child requests)
  std::vector<int64_t> cache_salt;        ///< extra keys of every block hash (separates caches)
  int32_t logprobs = -1;         ///< logprobs of each sampled token with its top n (0: its own only); -1: none
  int32_t prompt_logprobs = -1;  ///< the same for each prompt token after the first; -1: none (it then
                                 ///< never starts from a prefix-cache hit: every prompt row is computed)
};

/// The parameters of sample `index` of a request asking for n samples: n = 1, and a seed, when there
/// is one, offset by the index so that the samples differ yet each is reproducible. The n child
/// requests share the prompt's blocks through the prefix cache when admitted one after another.
request_params child_params(const request_params& p, int32_t index);

/// The scheduler's record of one sequence.
class request {
 public:
  request(request_id id, std::vector<int32_t> prompt_ids, request_params params,
          std::vector<int32_t> eos_token_ids = {});

  request_id id() const { return id_; }
  const request_params& params() const { return params_; }
  int32_t priority() const { return params_.priority; }
  const std::vector<int32_t>& eos_token_ids() const { return eos_; }

  /// Prompt then output ids, in one array (block hashes run over it).
  const std::vector<int32_t>& all_token_ids() const { return tokens_; }
  std::span<const int32_t> prompt_ids() const { return {tokens_.data(), size_t(num_prompt_)}; }
  std::span<const int32_t> output_ids() const {
    return {tokens_.data() + num_prompt_, tokens_.size() - size_t(num_prompt_)};
  }
  int32_t num_prompt_tokens() const { return num_prompt_; }
  int32_t num_output_tokens() const { return num_tokens() - num_prompt_; }
  int32_t num_tokens() const { return static_cast<int32_t>(tokens_.size()); }
  /// Known tokens plus the placeholders of steps in flight.
  int32_t num_tokens_with_placeholders() const { return num_tokens() + num_output_placeholders; }
  void append_output(int32_t token) { tokens_.push_back(token); }

  /// Tokens whose K/V is in the cache or will be written by a step already planned (the scheduler
  /// advances it when it plans a step, so the next step can be planned before this one's result).
  int32_t num_computed_tokens = 0;
  /// Tokens sampled by planned steps whose results are not back yet: they follow the known tokens,
  /// and the model runner supplies their ids itself (it sampled them).
  int32_t num_output_placeholders = 0;
  request_status status = request_status::waiting;
  /// Order of arrival, set by the scheduler; FCFS within a priority.
  uint64_t arrival = 0;
  int32_t num_preemptions = 0;
  /// What stopped it: the stop token id or stop string, or the error message.
  std::string stop_reason;
  // Scheduler bookkeeping: the last step it was scheduled in.
  uint64_t last_scheduled_step = 0;

  bool finished() const { return status >= request_status::finished_stopped; }

 private:
  request_id id_;
  std::vector<int32_t> tokens_;
  int32_t num_prompt_;
  request_params params_;
  std::vector<int32_t> eos_;
};

}  // namespace troupe::engine
