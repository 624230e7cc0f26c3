// Greedy and seeded sampling over one row of logits.
#include "engine/sampling/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace troupe::engine {

expected<void> validate(const sampling_params& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    return make_error("temperature must be a finite number >= 0, got ", p.temperature);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    return make_error("top_p must be in (0, 1], got ", p.top_p);
  if (p.top_k < -1) return make_error("top_k must be -1, 0 (off) or positive, got ", p.top_k);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f))
    return make_error("min_p must be in [0, 1], got ", p.min_p);
  return {};
}

int32_t argmax(std::span<const float> logits) {
  TROUPE_CHECK(!logits.empty());
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

sampler::sampler(const sampling_params& params, uint64_t fallback_seed)
    : params_(params), rng_(params.seed.value_or(fallback_seed)) {}

double sampler::uniform() { return double(rng_() >> 11) * 0x1.0p-53; }

int32_t sampler::sample(std::span<const float> logits) {
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
