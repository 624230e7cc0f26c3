// Seeded random weights for Llama-family shapes (the tensors weight_check.hpp lists).
#include "engine/model/random_weights.hpp"

#include <cmath>

#include "engine/model/weight_check.hpp"

namespace troupe::engine {
namespace {

// splitmix64: small, fast and the same everywhere.
struct splitmix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [-1, 1).
  float symmetric() { return static_cast<float>(static_cast<double>(next() >> 40) / double(1ull << 23) - 1.0); }
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

random_weights::random_weights(const config::model_config& cfg, uint64_t seed) {
  splitmix64 rng{seed};
  for (const auto& spec : model_weights(cfg)) {
    if (!spec.required) continue;
    int64_t n = 1;
    for (int64_t d : spec.shape) n *= d;
    std::vector<float> values(static_cast<size_t>(n));
    float scale = 1.0f, offset = 0.0f;
    if (spec.shape.size() == 2 && spec.name != "model.embed_tokens.weight") {
      scale = 1.0f / std::sqrt(static_cast<float>(spec.shape[1]));
    } else if (ends_with(spec.name, "norm.weight")) {
      scale = 0.1f;
      offset = 1.0f;
    } else if (ends_with(spec.name, ".bias")) {
      scale = 0.1f;
    }
    for (auto& v : values) v = offset + scale * rng.symmetric();
    num_parameters_ += n;
    tensors_.emplace(spec.name, std::move(values));
  }
}

const std::vector<float>* random_weights::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace troupe::engine
