// Random weights of a given Llama-family shape (vLLM's "dummy" load), for benchmarks and tests.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/model_config.hpp"

namespace troupe::engine {

/// The float32 weights that model_weights (weight_check.hpp) requires, drawn from a seeded generator: projections uniform in +-1/sqrt(in_features),
/// embeddings in +-1, norm weights near 1, biases in +-0.1. The same config and seed give the same
/// values on every platform.
class random_weights {
 public:
  random_weights(const config::model_config& cfg, uint64_t seed);

  /// The values of the weight called name, or nullptr.
  const std::vector<float>* find(std::string_view name) const;
  /// Total number of parameters.
  int64_t num_parameters() const { return num_parameters_; }

 private:
  std::map<std::string, std::vector<float>, std::less<>> tensors_;
  int64_t num_parameters_ = 0;
};

}  // namespace troupe::engine
