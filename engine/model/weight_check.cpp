// The list of tensors a Llama-family model needs, and the check of a model folder against it.
#include "engine/model/weight_check.hpp"

namespace troupe::engine {

std::vector<weight_requirement> model_weights(const config::model_config& cfg) {
  const int64_t hidden = cfg.hidden_size, inter = cfg.intermediate_size;
  const int64_t q_dim = cfg.num_attention_heads * cfg.head_dim;
  const int64_t kv_dim = cfg.num_key_value_heads * cfg.head_dim;
  std::vector<weight_requirement> w;
  w.push_back({"model.embed_tokens.weight", {cfg.vocab_size, hidden}});
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    w.push_back({p + "input_layernorm.weight", {hidden}});
    w.push_back({p + "self_attn.q_proj.weight", {q_dim, hidden}});
    w.push_back({p + "self_attn.k_proj.weight", {kv_dim, hidden}});
    w.push_back({p + "self_attn.v_proj.weight", {kv_dim, hidden}});
    if (cfg.qkv_bias) {
      w.push_back({p + "self_attn.q_proj.bias", {q_dim}});
      w.push_back({p + "self_attn.k_proj.bias", {kv_dim}});
      w.push_back({p + "self_attn.v_proj.bias", {kv_dim}});
    }
    w.push_back({p + "self_attn.o_proj.weight", {hidden, q_dim}});
    if (cfg.o_bias) w.push_back({p + "self_attn.o_proj.bias", {hidden}});
    w.push_back({p + "post_attention_layernorm.weight", {hidden}});
    w.push_back({p + "mlp.gate_proj.weight", {inter, hidden}});
    w.push_back({p + "mlp.up_proj.weight", {inter, hidden}});
    w.push_back({p + "mlp.down_proj.weight", {hidden, inter}});
  }
  w.push_back({"model.norm.weight", {hidden}});
  w.push_back({"lm_head.weight", {cfg.vocab_size, hidden}, !cfg.tie_word_embeddings});
  return w;
}

expected<void> check_weights(const config::model_config& cfg, const weight_store& store) {
  for (const weight_requirement& r : model_weights(cfg)) {
    if (!r.required && store.find(r.name) == nullptr) continue;
    if (auto t = store.get(r.name, r.shape); !t) return t.error();
  }
  return {};
}

}  // namespace troupe::engine
