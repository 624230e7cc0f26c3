// Loading reports its progress after every weight: counts only grow, end at the total, and the total
// is every element the model holds (tied and untied heads, biases).
#include <catch2/catch.hpp>

#include <vector>

#include "engine/model/llama_model.hpp"
#include "kernels/cpu/cpu_backend.hpp"

using troupe::engine::llama_model;

namespace {

struct report {
  int64_t done, total;
};

std::vector<report> load_random(troupe::config::model_config cfg, troupe::kernels::backend& be) {
  std::vector<report> seen;
  auto weights = llama_model::random(cfg, 1, be);  // the expected element count, without progress
  REQUIRE(weights.has_value());
  auto get = [&](const std::string&, const std::vector<int64_t>& shape) -> troupe::expected<llama_model::host_weight> {
    static std::vector<float> zeros;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (int64_t(zeros.size()) < n) zeros.resize(size_t(n), 0.5f);
    return llama_model::host_weight{troupe::kernels::dtype::f32, zeros.data()};
  };
  auto model = llama_model::build(cfg, be, get, nullptr, [&](int64_t done, int64_t total) { seen.push_back({done, total}); });
  REQUIRE(model.has_value());
  return seen;
}

}  // namespace

TEST_CASE("loading weights reports progress up to every element of the model", "[engine]") {
  troupe::kernels::cpu::cpu_backend be(1);
  troupe::config::model_config cfg;
  cfg.hidden_size = 64;
  cfg.intermediate_size = 160;
  cfg.num_hidden_layers = 3;
  cfg.num_attention_heads = 4;
  cfg.num_key_value_heads = 2;
  cfg.head_dim = 16;
  cfg.vocab_size = 100;
  cfg.max_position_embeddings = 128;
  for (bool tied : {false, true})
    for (bool bias : {false, true}) {
      cfg.tie_word_embeddings = tied;
      cfg.qkv_bias = bias;
      cfg.o_bias = bias;
      const auto seen = load_random(cfg, be);
      const int64_t per_layer = 2 * 64 + 64 * (2 * 64 + 2 * 32) + 3 * 64 * 160 + (bias ? 64 + 2 * 32 + 64 : 0);
      const int64_t want = 100 * 64 * (tied ? 1 : 2) + 64 + 3 * per_layer;
      INFO("tied " << tied << " bias " << bias);
      REQUIRE(!seen.empty());
      CHECK(seen.size() == size_t(3 * (bias ? 13 : 9) + (tied ? 2 : 3)));
      for (size_t i = 0; i < seen.size(); ++i) {
        CHECK(seen[i].total == want);
        if (i > 0) CHECK(seen[i].done > seen[i - 1].done);
      }
      CHECK(seen.back().done == want);
    }
}
