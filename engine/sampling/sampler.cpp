// Greedy and seeded sampling over one row of logits, with bias, penalties and logprobs.
#include "engine/sampling/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/cpu/sampling_reference.hpp"

namespace troupe::engine {

expected<void> validate(const sampling_params& p, int64_t vocab_size) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    return make_error("temperature must be a finite number >= 0, got ", p.temperature);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    return make_error("top_p must be in (0, 1], got ", p.top_p);
  if (p.top_k < -1) return make_error("top_k must be -1, 0 (off) or positive, got ", p.top_k);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f))
    return make_error("min_p must be in [0, 1], got ", p.min_p);
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty))
    return make_error("repetition_penalty must be > 0, got ", p.repetition_penalty);
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f))
    return make_error("presence_penalty must be in [-2, 2], got ", p.presence_penalty);
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f))
    return make_error("frequency_penalty must be in [-2, 2], got ", p.frequency_penalty);
  for (auto [id, bias] : p.logit_bias) {
    if (id < 0 || (vocab_size > 0 && id >= vocab_size))
      return make_error("logit_bias names token ", id, ", outside the vocabulary (size ", vocab_size, ")");
    if (!(bias >= -100.0f && bias <= 100.0f))
      return make_error("logit_bias for token ", id, " must be in [-100, 100], got ", bias);
  }
  return {};
}

int32_t argmax(std::span<const float> logits) { return kernels::cpu::argmax(logits); }

logprobs_entry compute_logprobs(std::span<const float> logits, int32_t token, int32_t top) {
  return kernels::cpu::compute_logprobs(logits, token, top);
}

sampler::sampler(const sampling_params& params, uint64_t fallback_seed)
    : params_(params), rng_(params.seed.value_or(fallback_seed)) {}

void sampler::set_prompt(std::span<const int32_t> prompt) {
  prompt_tokens_.assign(prompt.begin(), prompt.end());
  std::sort(prompt_tokens_.begin(), prompt_tokens_.end());
  prompt_tokens_.erase(std::unique(prompt_tokens_.begin(), prompt_tokens_.end()), prompt_tokens_.end());
}

void sampler::record(int32_t token) { ++output_counts_[token]; }

double sampler::uniform() { return double(rng_() >> 11) * 0x1.0p-53; }

bool sampler::has_adjustments() const {
  return !params_.logit_bias.empty() || params_.repetition_penalty != 1.0f ||
         params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f;
}

void sampler::append_adjustments(std::vector<kernels::logit_adjustment>& out) const {
  if (!has_adjustments()) return;
  using kind = kernels::logit_adjustment::kind;
  for (auto [id, bias] : params_.logit_bias) out.push_back({id, kind::add, bias});
  if (params_.repetition_penalty != 1.0f) {
    // Each token once, whether it was seen in the prompt, the output or both.
    for (int32_t id : prompt_tokens_) out.push_back({id, kind::penalise, params_.repetition_penalty});
    for (auto [id, count] : output_counts_)
      if (!std::binary_search(prompt_tokens_.begin(), prompt_tokens_.end(), id))
        out.push_back({id, kind::penalise, params_.repetition_penalty});
  }
  if (params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f)  // else x - 0 is x
    for (auto [id, count] : output_counts_)
      out.push_back({id, kind::subtract, params_.frequency_penalty * float(count) + params_.presence_penalty});
}

kernels::row_recipe sampler::next_recipe(std::vector<kernels::logit_adjustment>& adjustments) {
  kernels::row_recipe r;
  r.temperature = params_.temperature;
  r.top_k = params_.top_k;
  r.top_p = params_.top_p;
  r.min_p = params_.min_p;
  r.first_adjustment = uint32_t(adjustments.size());
  append_adjustments(adjustments);
  r.num_adjustments = uint32_t(adjustments.size() - r.first_adjustment);
  // Greedy draws nothing from the stream, as before the recipe existed.
  if (r.temperature != 0.0f) r.uniform = uniform();
  return r;
}

int32_t sampler::sample(std::span<const float> raw) {
  scratch_.clear();
  const kernels::row_recipe r = next_recipe(scratch_);
  const int32_t token = kernels::cpu::sample_row(raw, r, scratch_, nullptr, &probs_);
  record(token);
  return token;
}

}  // namespace troupe::engine
