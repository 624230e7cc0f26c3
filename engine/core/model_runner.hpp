// Turns scheduler steps into forward passes: builds each step's inputs, runs the model, samples.
#pragma once

#include <cstdint>
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
  void apply(const schedule_output& output);
  expected<void> build(const schedule_output& output);
  /// Appends each sampled token to its request's tokens (the next step's placeholder input).
  void record_samples(const schedule_output& output, const step_result& result);

  llama_model& model_;
  int32_t block_size_;
  std::unique_ptr<kv_cache> cache_;
  std::unordered_map<request_id, request_state> states_;
  step_input input_;
  std::vector<row_use> rows_;  // parallel to input_.logits_indices
  std::vector<request_id> awaiting_sample_;  // sampling requests of the step being run
};

}  // namespace troupe::engine
