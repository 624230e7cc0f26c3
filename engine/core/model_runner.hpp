// Turns scheduler steps into forward passes: builds each step's inputs, runs the model, samples.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "config/error.hpp"
#include "engine/core/schedule_output.hpp"
#include "engine/model/kv_cache.hpp"
#include "engine/model/llama_model.hpp"
#include "engine/model/step_input.hpp"
#include "engine/sampling/sampler.hpp"

namespace troupe::engine {

struct sampling_row;  // engine/core/step_sampling.hpp

/// Whether a runner's driver (runner_thread, the executor actor) launches a step before the one
/// before it finishes (model_runner::launch / finish): yes unless TROUPE_OVERLAP=0 (measurements).
bool overlap_enabled();
/// How often a driver with a launched step and nothing to launch next checks whether it is done.
inline constexpr std::chrono::microseconds launch_poll_interval{20};

/// What one step produced, per entry of the schedule output's `scheduled` list.
struct step_result {
  std::vector<int32_t> sampled;  ///< the sampled token, or -1 where the entry does not sample
  /// Logprobs of the sampled token (when its request asks for them; empty entry otherwise).
  std::vector<std::vector<logprobs_entry>> logprobs;
  /// Logprobs of the prompt tokens this step scored, in prompt order (when asked for).
  std::vector<std::vector<logprobs_entry>> prompt_logprobs;
};

/// The model's side of the engine (what the executor actor owns): the K/V memory of the pool's
/// blocks, each request's tokens and block table as the schedule outputs describe them, and one
/// sampler per request. Each token it samples is appended to its request's tokens, so a step planned
/// before the scheduler knew that token (a placeholder) finds its input here. Steps must be run in
/// the order they were planned. A request's sampler lives from its first step until it finishes (also
/// across preemption), and is seeded by the request alone, so a seed gives the same tokens
/// whatever else is in the batch.
class model_runner {
 public:
  model_runner(llama_model& model, int32_t num_blocks, int32_t block_size);

  /// Runs one step: samples a token for every entry that reaches the end of its request's tokens,
  /// and scores prompt tokens where asked (each prompt token once, also across preemption). Errors
  /// (the model rejected the step) leave the request states as the schedule output made them.
  expected<step_result> execute(const schedule_output& output);

  /// execute() in two halves, so that step N + 1 can start on the device before step N's tokens
  /// reach the host: launch() builds the step's inputs and issues its forward pass and sampling,
  /// finish() waits for the oldest launched step's samples and returns its result. At most two steps
  /// are launched and not finished, and they finish in order. A token of the step before, still on
  /// the device, goes into the next step's inputs there (step_input::fed_*). `output` must stay
  /// alive until its step finishes. A launch error leaves nothing launched for that step.
  expected<void> launch(const schedule_output& output);
  expected<step_result> finish();
  /// Steps launched and not finished.
  size_t num_launched() const { return launched_.size(); }
  /// Whether `next` may be launched while the one launched is unfinished: its samplers must not
  /// need the tokens still on the device (penalties count generated tokens when the recipe is made).
  bool may_launch_before_finish(const schedule_output& next) const;
  /// Whether finish() would return without waiting for the device.
  bool oldest_ready();

  /// The inputs of the last step (for tests and tracing).
  const step_input& last_input() const { return input_; }
  /// Requests it holds state for (finished ones leave with the next step's finished_request_ids).
  size_t num_requests() const { return states_.size(); }
  kv_cache& cache() { return *cache_; }
  /// The seed of a request whose parameters carry none.
  static uint64_t fallback_seed(request_id id);

 private:
  struct request_state {
    std::vector<int32_t> token_ids;
    std::vector<int32_t> block_ids;
    int32_t num_computed_tokens = 0;
    int32_t num_prompt_tokens = 0;
    int32_t logprobs = -1, prompt_logprobs = -1;
    int32_t next_prompt_logprob = 1;  // the next prompt token to score (the first has no logprob)
    std::unique_ptr<sampler> pick;
    bool lost = false;  // a step that sampled for it failed: later steps' results are discarded
  };
  // Token rows of the step whose logits a request needs.
  struct row_use {
    size_t entry;         // index in output.scheduled
    int32_t prompt_token; // the prompt token it scores, or -1: the row samples
  };
  // A step launched and not finished.
  struct launched_step {
    const schedule_output* output = nullptr;
    int ticket = -1;                        // the backend's sample ticket (-1: nothing sampled)
    std::vector<row_use> rows;              // parallel to the sample op's rows
    std::vector<request_id> sampling;       // requests that sample in it
    std::unordered_map<request_id, int32_t> sample_row;  // request -> its sample row
  };
  void apply(const schedule_output& output);
  expected<void> build(const schedule_output& output, launched_step& step);
  std::vector<sampling_row> sampling_rows(const launched_step& step);
  /// Appends each sampled token to its request's tokens (the next step's placeholder input).
  void record_samples(const schedule_output& output, const step_result& result);

  llama_model& model_;
  int32_t block_size_;
  std::unique_ptr<kv_cache> cache_;
  std::unordered_map<request_id, request_state> states_;
  step_input input_;
  std::vector<request_id> awaiting_sample_;  // sampling requests of a step that failed
  std::deque<launched_step> launched_;
};

}  // namespace troupe::engine
