// Which tensors a Llama/Mistral/Qwen2 model needs, and a check that a weight_store has them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/error.hpp"
#include "config/model_config.hpp"
#include "engine/model/weight_store.hpp"

namespace troupe::engine {

/// One tensor of a Llama-family model in Hugging Face naming, with its shape.
struct weight_requirement {
  std::string name;
  std::vector<int64_t> shape;
  bool required = true;  ///< false: accepted when present (lm_head.weight of a tied model)
};

/// Every tensor the forward pass of CFG reads, in a fixed order: embeddings, then per layer the
/// norms, attention (biases where the config has them) and MLP, then the final norm and lm_head.
/// The single source of truth for names and shapes.
std::vector<weight_requirement> model_weights(const config::model_config& cfg);

/// Checks that every required tensor exists with its shape (and optional ones, when present);
/// the first problem is reported naming the tensor, its file, the expected and found shape.
expected<void> check_weights(const config::model_config& cfg, const weight_store& store);

}  // namespace troupe::engine
