// The reference semantics of sampling one row of logits (backend::sample): the CPU backend runs
// exactly this, and other backends are tested against it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/sampling.hpp"

namespace troupe::kernels::cpu {

/// Index of the largest logit; the lowest index among equals (as torch.argmax).
int32_t argmax(std::span<const float> logits);

/// Applies the adjustments in order; ids outside the row are ignored.
void apply_adjustments(std::span<float> logits, std::span<const logit_adjustment> adjustments);

/// Picks a token from (adjusted) logits by the recipe's temperature, top_k, top_p, min_p and
/// uniform: greedy at temperature 0; else the candidates in order of decreasing logit (ties: lower
/// id first) are cut to top_k, weighed by softmax(logit / temperature) in double, cut to the
/// smallest prefix whose mass reaches top_p (the first always stays), then to those at least min_p
/// times the first's probability, and the token is drawn by inverse CDF at uniform x kept mass.
/// `probs`, when given, receives the distribution drawn from (zero where cut; empty when greedy).
int32_t draw(std::span<const float> logits, const row_recipe& recipe, std::vector<float>* probs = nullptr);

/// The logprob of `token` under softmax(logits), its rank and the `top` most likely tokens.
logprobs_entry compute_logprobs(std::span<const float> logits, int32_t token, int32_t top);

/// One row as backend::sample does it: adjustments (on a copy), then the draw (or the recipe's
/// score_token), then logprobs of the raw row when asked. Returns the token.
int32_t sample_row(std::span<const float> logits, const row_recipe& recipe,
                   std::span<const logit_adjustment> adjustments, logprobs_entry* logprobs,
                   std::vector<float>* probs = nullptr);

/// Every row of host float32 logits [batch.rows.size(), vocab], split over up to `threads` threads
/// (the result does not depend on the split).
void sample_rows(const float* logits, int64_t vocab, const sampling_batch& batch, sample_result& out,
                 int threads);

}  // namespace troupe::kernels::cpu
