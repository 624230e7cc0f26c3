// Chooses the next token from a row of logits: greedy, or seeded sampling with temperature, top-k,
// top-p and min-p.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "config/error.hpp"

namespace troupe::engine {

/// How one request picks its tokens. temperature 0 is greedy.
struct sampling_params {
  float temperature = 1.0f;
  float top_p = 1.0f;   ///< keep the smallest set of most likely tokens whose probability reaches top_p
  int32_t top_k = 0;    ///< keep the k most likely tokens; 0 or -1 keeps all
  float min_p = 0.0f;   ///< drop tokens less likely than min_p times the most likely one
  std::optional<uint64_t> seed;
};

/// Checks ranges: temperature >= 0, 0 < top_p <= 1, top_k >= -1, 0 <= min_p <= 1.
expected<void> validate(const sampling_params& p);

/// Index of the largest logit; the lowest index among equals (as torch.argmax).
int32_t argmax(std::span<const float> logits);

/// One request's sampler. The same parameters and seed give the same tokens for the same logits.
class sampler {
 public:
  /// `fallback_seed` is used when the parameters carry none.
  sampler(const sampling_params& params, uint64_t fallback_seed);

  /// Picks a token from one row of logits.
  int32_t sample(std::span<const float> logits);

  /// The probabilities the last sample() drew from (zero where filtered out); empty when greedy.
  const std::vector<float>& last_probs() const { return probs_; }

 private:
  /// A uniform double in [0, 1) from the 53 high bits of the generator (the same on every platform).
  double uniform();

  sampling_params params_;
  std::mt19937_64 rng_;
  std::vector<float> probs_;
  std::vector<int32_t> order_;
};

}  // namespace troupe::engine
