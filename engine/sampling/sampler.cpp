// Greedy and seeded sampling over one row of logits, with bias, penalties and logprobs.
#include "engine/sampling/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

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

int32_t argmax(std::span<const float> logits) {
  TROUPE_CHECK(!logits.empty());
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

logprobs_entry compute_logprobs(std::span<const float> logits, int32_t token, int32_t top) {
  TROUPE_CHECK(!logits.empty() && token >= 0 && size_t(token) < logits.size());
  const float m = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float x : logits) sum += std::exp(double(x) - m);
  const double log_z = m + std::log(sum);
  logprobs_entry e;
  e.chosen = {token, float(logits[token] - log_z)};
  e.rank = 1;
  for (size_t i = 0; i < logits.size(); ++i)
    if (logits[i] > logits[token] || (logits[i] == logits[token] && int32_t(i) < token)) ++e.rank;
  if (top > 0) {
    std::vector<int32_t> idx(logits.size());
    std::iota(idx.begin(), idx.end(), 0);
    const size_t k = std::min(logits.size(), size_t(top));
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (size_t i = 0; i < k; ++i) e.top.push_back({idx[i], float(logits[idx[i]] - log_z)});
  }
  return e;
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

std::span<const float> sampler::adjusted(std::span<const float> logits) {
  if (!has_adjustments()) return logits;
  work_.assign(logits.begin(), logits.end());
  const auto n = int64_t(work_.size());
  for (auto [id, bias] : params_.logit_bias)
    if (id >= 0 && id < n) work_[id] += bias;
  if (params_.repetition_penalty != 1.0f) {
    auto penalise = [&](int32_t id) {
      if (id < 0 || id >= n) return;
      float& x = work_[id];
      x = x > 0.0f ? x / params_.repetition_penalty : x * params_.repetition_penalty;
    };
    // Each token once, whether it was seen in the prompt, the output or both.
    for (int32_t id : prompt_tokens_) penalise(id);
    for (auto [id, count] : output_counts_)
      if (!std::binary_search(prompt_tokens_.begin(), prompt_tokens_.end(), id)) penalise(id);
  }
  for (auto [id, count] : output_counts_) {
    if (id < 0 || id >= n) continue;
    work_[id] -= params_.frequency_penalty * float(count) + params_.presence_penalty;
  }
  return work_;
}

int32_t sampler::sample(std::span<const float> raw) {
  const int32_t token = draw(adjusted(raw));
  record(token);
  return token;
}

int32_t sampler::draw(std::span<const float> logits) {
  if (params_.temperature == 0.0f) {
    probs_.clear();
    return argmax(logits);
  }
  const size_t n = logits.size();
  TROUPE_CHECK(n > 0);
  // Candidates in order of decreasing logit (ties: lower id first), cut to top_k.
  order_.resize(n);
  std::iota(order_.begin(), order_.end(), 0);
  size_t keep = n;
  if (params_.top_k > 0) keep = std::min(n, size_t(params_.top_k));
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (keep < n) {
    std::partial_sort(order_.begin(), order_.begin() + keep, order_.end(), by_logit);
  } else {
    std::sort(order_.begin(), order_.end(), by_logit);
  }
  // Softmax of logits / temperature over the kept candidates, in double for stable sums.
  const double inv_t = 1.0 / params_.temperature;
  const double top = logits[order_[0]] * inv_t;
  std::vector<double> p(keep);
  double sum = 0.0;
  for (size_t i = 0; i < keep; ++i) sum += p[i] = std::exp(logits[order_[i]] * inv_t - top);
  for (auto& x : p) x /= sum;
  // top-p: the smallest prefix whose mass reaches top_p (the first token always stays).
  if (params_.top_p < 1.0f) {
    double mass = 0.0;
    size_t cut = 0;
    while (cut < keep) {
      mass += p[cut++];
      if (mass >= params_.top_p) break;
    }
    keep = cut;
  }
  // min-p: relative to the most likely token.
  if (params_.min_p > 0.0f) {
    const double floor = p[0] * params_.min_p;
    size_t cut = 1;
    while (cut < keep && p[cut] >= floor) ++cut;
    keep = cut;
  }
  double kept = 0.0;
  for (size_t i = 0; i < keep; ++i) kept += p[i];
  probs_.assign(n, 0.0f);
  for (size_t i = 0; i < keep; ++i) probs_[order_[i]] = float(p[i] / kept);
  // Inverse-CDF draw over the kept candidates.
  double u = uniform() * kept;
  for (size_t i = 0; i < keep; ++i) {
    if (u < p[i]) return order_[i];
    u -= p[i];
  }
  return order_[keep - 1];
}

}  // namespace troupe::engine
