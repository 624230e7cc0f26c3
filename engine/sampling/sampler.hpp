// Chooses the next token from a row of logits: greedy, or seeded sampling with temperature, top-k,
// top-p and min-p, after logit bias and repetition/presence/frequency penalties; and logprobs.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/error.hpp"
#include "kernels/sampling.hpp"

namespace troupe::engine {

/// How one request picks its tokens. temperature 0 is greedy.
struct sampling_params {
  float temperature = 1.0f;
  float top_p = 1.0f;   ///< keep the smallest set of most likely tokens whose probability reaches top_p
  int32_t top_k = 0;    ///< keep the k most likely tokens; 0 or -1 keeps all
  float min_p = 0.0f;   ///< drop tokens less likely than min_p times the most likely one
  /// Tokens already in the prompt or the output: positive logits divided by it, negative multiplied
  /// (as Hugging Face and vLLM); 1 is off.
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;   ///< subtracted once from every token already generated
  float frequency_penalty = 0.0f;  ///< subtracted per occurrence of a token already generated
  std::vector<std::pair<int32_t, float>> logit_bias;  ///< added to the raw logits of these tokens
  std::optional<uint64_t> seed;
};

/// Checks ranges: temperature >= 0, 0 < top_p <= 1, top_k >= -1, 0 <= min_p <= 1,
/// repetition_penalty > 0, penalties within [-2, 2], bias ids within the vocabulary, biases within
/// [-100, 100] (OpenAI's ranges). vocab_size 0 skips the id check.
expected<void> validate(const sampling_params& p, int64_t vocab_size = 0);

/// Index of the largest logit; the lowest index among equals (as torch.argmax).
int32_t argmax(std::span<const float> logits);

/// The log-probability of a token, its rank and the most likely tokens: the record a backend's
/// sample op returns (kernels/sampling.hpp), used as is by the engine and the layers above.
using token_logprob = kernels::token_logprob;
using logprobs_entry = kernels::logprobs_entry;

/// The logprobs entry of `token` under softmax(logits) with the `top` most likely tokens (ties:
/// lower id first), of the model's own distribution (before bias, penalties and temperature).
logprobs_entry compute_logprobs(std::span<const float> logits, int32_t token, int32_t top);

/// One request's sampler: it owns the request's random stream and the counts that penalties need,
/// so the same parameters and seed give the same tokens whatever else runs beside the request.
/// The picking itself is kernels/cpu/sampling_reference (or a backend's sample op) following the
/// recipe the sampler writes.
class sampler {
 public:
  /// `fallback_seed` is used when the parameters carry none.
  sampler(const sampling_params& params, uint64_t fallback_seed);

  /// Tells the sampler the prompt (for repetition_penalty).
  void set_prompt(std::span<const int32_t> prompt);
  /// Records a token as generated without sampling it (e.g. a request resumed after preemption).
  void record(int32_t token);
  /// Picks a token from one row of logits and records it as generated.
  int32_t sample(std::span<const float> logits);
  /// The recipe for this request's next token (a row of a backend's sample op): its adjustments
  /// are appended to `adjustments`, and a uniform is drawn from the random stream unless greedy.
  /// Record the token the op picks.
  kernels::row_recipe next_recipe(std::vector<kernels::logit_adjustment>& adjustments);

  /// The probabilities the last sample() drew from (zero where filtered out); empty when greedy.
  const std::vector<float>& last_probs() const { return probs_; }
  const sampling_params& params() const { return params_; }

 private:
  /// A uniform double in [0, 1) from the 53 high bits of the generator (the same on every platform).
  double uniform();
  /// Logit bias, then the repetition penalty of tokens in the prompt or the output (each once),
  /// then frequency * count + presence of generated tokens, as adjustments in that order.
  void append_adjustments(std::vector<kernels::logit_adjustment>& out) const;
  bool has_adjustments() const;

  sampling_params params_;
  std::mt19937_64 rng_;
  std::vector<float> probs_;
  std::vector<kernels::logit_adjustment> scratch_;
  std::vector<int32_t> prompt_tokens_;               // sorted, unique
  std::unordered_map<int32_t, int32_t> output_counts_;
};

}  // namespace troupe::engine
