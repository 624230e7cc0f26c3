// Greedy and seeded sampling of one row of logits, with adjustments and logprobs (the reference).
#include "kernels/cpu/sampling_reference.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "config/error.hpp"
#include "kernels/cpu/parallel.hpp"

namespace troupe::kernels::cpu {

int32_t argmax(std::span<const float> logits) {
  TROUPE_CHECK(!logits.empty());
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

void apply_adjustments(std::span<float> logits, std::span<const logit_adjustment> adjustments) {
  const auto n = int64_t(logits.size());
  for (const logit_adjustment& a : adjustments) {
    if (a.token < 0 || a.token >= n) continue;
    float& x = logits[size_t(a.token)];
    switch (a.op) {
      case logit_adjustment::kind::add: x += a.value; break;
      case logit_adjustment::kind::penalise: x = x > 0.0f ? x / a.value : x * a.value; break;
      case logit_adjustment::kind::subtract: x -= a.value; break;
    }
  }
}

int32_t draw(std::span<const float> logits, const row_recipe& recipe, std::vector<float>* probs) {
  if (recipe.temperature == 0.0f) {
    if (probs) probs->clear();
    return argmax(logits);
  }
  const size_t n = logits.size();
  TROUPE_CHECK(n > 0);
  // Candidates in order of decreasing logit (ties: lower id first), cut to top_k.
  thread_local std::vector<int32_t> order;
  order.resize(n);
  std::iota(order.begin(), order.end(), 0);
  size_t keep = n;
  if (recipe.top_k > 0) keep = std::min(n, size_t(recipe.top_k));
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (keep < n) {
    std::partial_sort(order.begin(), order.begin() + ptrdiff_t(keep), order.end(), by_logit);
  } else {
    std::sort(order.begin(), order.end(), by_logit);
  }
  // Softmax of logits / temperature over the kept candidates, in double for stable sums.
  const double inv_t = 1.0 / recipe.temperature;
  const double top = logits[order[0]] * inv_t;
  thread_local std::vector<double> p;
  p.resize(keep);
  double sum = 0.0;
  for (size_t i = 0; i < keep; ++i) sum += p[i] = std::exp(logits[order[i]] * inv_t - top);
  for (size_t i = 0; i < keep; ++i) p[i] /= sum;
  // top-p: the smallest prefix whose mass reaches top_p (the first token always stays).
  if (recipe.top_p < 1.0f) {
    double mass = 0.0;
    size_t cut = 0;
    while (cut < keep) {
      mass += p[cut++];
      if (mass >= recipe.top_p) break;
    }
    keep = cut;
  }
  // min-p: relative to the most likely token.
  if (recipe.min_p > 0.0f) {
    const double floor = p[0] * recipe.min_p;
    size_t cut = 1;
    while (cut < keep && p[cut] >= floor) ++cut;
    keep = cut;
  }
  double kept = 0.0;
  for (size_t i = 0; i < keep; ++i) kept += p[i];
  if (probs) {
    probs->assign(n, 0.0f);
    for (size_t i = 0; i < keep; ++i) (*probs)[size_t(order[i])] = float(p[i] / kept);
  }
  // Inverse-CDF draw over the kept candidates.
  double u = recipe.uniform * kept;
  for (size_t i = 0; i < keep; ++i) {
    if (u < p[i]) return order[i];
    u -= p[i];
  }
  return order[keep - 1];
}

logprobs_entry compute_logprobs(std::span<const float> logits, int32_t token, int32_t top) {
  TROUPE_CHECK(!logits.empty() && token >= 0 && size_t(token) < logits.size());
  const float m = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float x : logits) sum += std::exp(double(x) - m);
  const double log_z = m + std::log(sum);
  logprobs_entry e;
  e.chosen = {token, float(logits[size_t(token)] - log_z)};
  e.rank = 1;
  for (size_t i = 0; i < logits.size(); ++i)
    if (logits[i] > logits[size_t(token)] || (logits[i] == logits[size_t(token)] && int32_t(i) < token)) ++e.rank;
  if (top > 0) {
    std::vector<int32_t> idx(logits.size());
    std::iota(idx.begin(), idx.end(), 0);
    const size_t k = std::min(logits.size(), size_t(top));
    std::partial_sort(idx.begin(), idx.begin() + ptrdiff_t(k), idx.end(), [&](int32_t a, int32_t b) {
      return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
    });
    for (size_t i = 0; i < k; ++i) e.top.push_back({idx[i], float(logits[size_t(idx[i])] - log_z)});
  }
  return e;
}

int32_t sample_row(std::span<const float> logits, const row_recipe& recipe,
                   std::span<const logit_adjustment> adjustments, logprobs_entry* logprobs,
                   std::vector<float>* probs) {
  int32_t token = recipe.score_token;
  if (token < 0) {
    std::span<const float> row = logits;
    thread_local std::vector<float> work;
    if (!adjustments.empty()) {
      work.assign(logits.begin(), logits.end());
      apply_adjustments(work, adjustments);
      row = work;
    }
    token = draw(row, recipe, probs);
  }
  if (logprobs != nullptr && recipe.logprobs >= 0) *logprobs = compute_logprobs(logits, token, recipe.logprobs);
  return token;
}

void sample_rows(const float* logits, int64_t vocab, const sampling_batch& batch, sample_result& out,
                 int threads) {
  const auto rows = int64_t(batch.rows.size());
  out.tokens.assign(size_t(rows), -1);
  out.logprobs.assign(size_t(rows), logprobs_entry{});
  parallel_for(rows, threads, vocab * 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const row_recipe& recipe = batch.rows[size_t(r)];
      TROUPE_CHECK(size_t(recipe.first_adjustment) + recipe.num_adjustments <= batch.adjustments.size());
      const std::span<const logit_adjustment> adj(batch.adjustments.data() + recipe.first_adjustment,
                                                  recipe.num_adjustments);
      out.tokens[size_t(r)] = sample_row(std::span<const float>(logits + r * vocab, size_t(vocab)), recipe, adj,
                                         &out.logprobs[size_t(r)]);
    }
  });
}

}  // namespace troupe::kernels::cpu
