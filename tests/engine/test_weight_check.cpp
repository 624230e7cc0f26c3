// Tests for model_weights and check_weights: the names and shapes a Llama/Mistral/Qwen2 model
// needs, and the errors for missing or misshapen tensors.
#include <catch2/catch.hpp>

#include <algorithm>

#include "config/model_config.hpp"
#include "engine/model/weight_check.hpp"
#include "tests/data/safetensors_writer.hpp"

namespace fs = std::filesystem;
using namespace troupe::engine;
using namespace troupe::testing;
using troupe::config::model_config;

namespace {

/// A small GQA config: 2 layers, hidden 16, 4 heads of 8 (q_dim 32), 2 kv heads, vocab 10.
model_config small_config(bool qkv_bias, bool o_bias, bool tied) {
  model_config c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 10;
  c.qkv_bias = qkv_bias;
  c.o_bias = o_bias;
  c.tie_word_embeddings = tied;
  return c;
}

const weight_requirement* find_req(const std::vector<weight_requirement>& w, const std::string& n) {
  auto it = std::find_if(w.begin(), w.end(), [&](const auto& r) { return r.name == n; });
  return it == w.end() ? nullptr : &*it;
}

/// Writes DIR/model.safetensors with the given requirements, skipping SKIP and giving
/// RESHAPE the shape NEW_SHAPE.
void write_model(const temp_dir& d, const std::vector<weight_requirement>& reqs,
                 const std::string& skip = "", const std::string& reshape = "",
                 std::vector<int64_t> new_shape = {}) {
  std::vector<st_tensor> tensors;
  for (const auto& r : reqs) {
    if (r.name == skip) continue;
    tensors.push_back(iota_f32(r.name, r.name == reshape ? new_shape : r.shape));
  }
  d.write("model.safetensors", safetensors_file(tensors));
}

std::string check_error(const temp_dir& d, const model_config& c) {
  auto store = weight_store::open(d.path);
  if (!store) return "open: " + store.error().message;
  auto ok = check_weights(c, **store);
  return ok ? std::string() : ok.error().message;
}

}  // namespace

TEST_CASE("the bundled stories260k model has every tensor it needs") {
  auto cfg = troupe::config::load_model_config(TROUPE_DEFAULT_MODEL);
  REQUIRE(cfg);
  auto store = weight_store::open(TROUPE_DEFAULT_MODEL);
  REQUIRE(store);
  auto ok = check_weights(*cfg, **store);
  INFO((ok ? std::string() : ok.error().message));
  CHECK(ok);
  auto w = model_weights(*cfg);
  CHECK(w.size() == 1 + 5 * 9 + 2);
  CHECK(w.front().name == "model.embed_tokens.weight");
  CHECK(w.back().name == "lm_head.weight");
  CHECK_FALSE(w.back().required);  // tied
  const weight_requirement* q = find_req(w, "model.layers.4.self_attn.q_proj.weight");
  REQUIRE(q);
  CHECK(q->shape == std::vector<int64_t>{64, 64});
  CHECK(find_req(w, "model.layers.0.self_attn.k_proj.weight")->shape == std::vector<int64_t>{32, 64});
  CHECK(find_req(w, "model.layers.0.mlp.down_proj.weight")->shape == std::vector<int64_t>{64, 172});
  CHECK(find_req(w, "model.layers.0.self_attn.q_proj.bias") == nullptr);
}

TEST_CASE("model_weights: exact shapes with GQA, biases and untied embeddings") {
  auto w = model_weights(small_config(true, true, false));
  CHECK(w.size() == 1 + 2 * 13 + 2);
  CHECK(find_req(w, "model.embed_tokens.weight")->shape == std::vector<int64_t>{10, 16});
  CHECK(find_req(w, "model.layers.1.self_attn.q_proj.weight")->shape == std::vector<int64_t>{32, 16});
  CHECK(find_req(w, "model.layers.1.self_attn.k_proj.weight")->shape == std::vector<int64_t>{16, 16});
  CHECK(find_req(w, "model.layers.1.self_attn.v_proj.bias")->shape == std::vector<int64_t>{16});
  CHECK(find_req(w, "model.layers.1.self_attn.q_proj.bias")->shape == std::vector<int64_t>{32});
  CHECK(find_req(w, "model.layers.1.self_attn.o_proj.weight")->shape == std::vector<int64_t>{16, 32});
  CHECK(find_req(w, "model.layers.1.self_attn.o_proj.bias")->shape == std::vector<int64_t>{16});
  CHECK(find_req(w, "model.layers.1.mlp.gate_proj.weight")->shape == std::vector<int64_t>{24, 16});
  CHECK(find_req(w, "model.layers.1.mlp.up_proj.weight")->shape == std::vector<int64_t>{24, 16});
  CHECK(find_req(w, "model.layers.1.mlp.down_proj.weight")->shape == std::vector<int64_t>{16, 24});
  CHECK(find_req(w, "model.norm.weight")->shape == std::vector<int64_t>{16});
  CHECK(find_req(w, "lm_head.weight")->required);
  auto qwen = model_weights(small_config(true, false, true));
  CHECK(find_req(qwen, "model.layers.0.self_attn.q_proj.bias") != nullptr);
  CHECK(find_req(qwen, "model.layers.0.self_attn.o_proj.bias") == nullptr);
}

TEST_CASE("check_weights accepts a complete model and names the first problem") {
  const model_config cfg = small_config(true, false, false);
  const auto reqs = model_weights(cfg);
  temp_dir d;
  write_model(d, reqs);
  CHECK(check_error(d, cfg).empty());

  write_model(d, reqs, "model.layers.1.self_attn.k_proj.bias");
  CHECK_THAT(check_error(d, cfg), Catch::Contains("model.layers.1.self_attn.k_proj.bias") &&
                                      Catch::Contains("missing") && Catch::Contains("[16]"));
  write_model(d, reqs, "lm_head.weight");
  CHECK_THAT(check_error(d, cfg), Catch::Contains("lm_head.weight") && Catch::Contains("missing"));
  write_model(d, reqs, "", "model.layers.0.mlp.down_proj.weight", {24, 16});
  CHECK_THAT(check_error(d, cfg), Catch::Contains("model.safetensors") &&
                                      Catch::Contains("model.layers.0.mlp.down_proj.weight") &&
                                      Catch::Contains("has shape [24, 16]") &&
                                      Catch::Contains("expected [16, 24]"));
}

TEST_CASE("tied embeddings: lm_head.weight optional, but checked when present") {
  const model_config tied = small_config(false, false, true);
  temp_dir d;
  auto reqs = model_weights(tied);
  write_model(d, reqs, "lm_head.weight");
  CHECK(check_error(d, tied).empty());
  write_model(d, reqs);
  CHECK(check_error(d, tied).empty());
  write_model(d, reqs, "", "lm_head.weight", {10, 15});
  CHECK_THAT(check_error(d, tied), Catch::Contains("lm_head.weight") && Catch::Contains("[10, 15]"));
}

TEST_CASE("Llama attention_bias needs the o_proj bias too") {
  const model_config with_o = small_config(true, true, true);
  temp_dir d;
  write_model(d, model_weights(small_config(true, false, true)));
  CHECK_THAT(check_error(d, with_o), Catch::Contains("model.layers.0.self_attn.o_proj.bias"));
}
