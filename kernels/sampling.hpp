// What the backend's sample op is given (one small recipe per row of logits) and what it returns.
#pragma once

#include <cstdint>
#include <vector>

namespace troupe::kernels {

/// One change to one logit before sampling. Applied in the order given, so that a token with a
/// bias, a repetition penalty and a presence penalty gets them in that order.
struct logit_adjustment {
  enum class kind : int32_t {
    add,       ///< x += value (logit bias)
    penalise,  ///< x = x > 0 ? x / value : x * value (repetition penalty)
    subtract,  ///< x -= value (frequency * count + presence)
  };
  int32_t token = 0;
  kind op = kind::add;
  float value = 0.0f;
};

/// How one row of logits is sampled.
struct row_recipe {
  float temperature = 0.0f;  ///< 0: greedy (argmax, lowest id among equals)
  int32_t top_k = 0;         ///< 0 or less: every token
  float top_p = 1.0f;
  float min_p = 0.0f;
  /// A uniform double in [0, 1) drawn by the caller from the request's own random stream (not read
  /// when greedy), so a seed gives the same tokens whatever else is in the batch.
  double uniform = 0.0;
  /// >= 0: the row scores this token (prompt logprobs) instead of sampling one.
  int32_t score_token = -1;
  /// -1: no logprobs; n >= 0: the chosen token's logprob and rank and the n most likely tokens
  /// (at most max_top_logprobs).
  int32_t logprobs = -1;
  /// This row's adjustments: sampling_batch::adjustments[first_adjustment, + num_adjustments).
  uint32_t first_adjustment = 0;
  uint32_t num_adjustments = 0;
};

/// Most top logprobs a row may ask for.
inline constexpr int32_t max_top_logprobs = 20;

/// The recipes of every row of a logits tensor, in row order.
struct sampling_batch {
  std::vector<row_recipe> rows;
  std::vector<logit_adjustment> adjustments;

  void clear() {
    rows.clear();
    adjustments.clear();
  }
};

struct token_logprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

/// The log-probability of a token under softmax of the model's raw logits (before adjustments and
/// temperature, as vLLM reports them), its rank (1 = most likely; ties: lower id first) and the
/// most likely tokens.
struct logprobs_entry {
  token_logprob chosen;
  int64_t rank = 0;
  std::vector<token_logprob> top;
};

/// What sample returns, per row: the token (sampled, or the scored one) and, where the recipe asks
/// for logprobs, its entry (rank 0 and nothing else where it does not).
struct sample_result {
  std::vector<int32_t> tokens;
  std::vector<logprobs_entry> logprobs;
};

}  // namespace troupe::kernels
