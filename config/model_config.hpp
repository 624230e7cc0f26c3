// The model's own configuration, read from a Hugging Face folder (config.json, generation_config.json,
// tokenizer_config.json) and validated.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/error.hpp"

namespace troupe::config {

enum class architecture { llama, mistral, qwen2 };

enum class rope_scaling_type { none, linear, llama3 };

/// RoPE frequency scaling (rope_scaling / rope_parameters of config.json).
struct rope_scaling {
  rope_scaling_type type = rope_scaling_type::none;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

/// Everything the forward pass needs to know about a Llama-family model.
struct model_config {
  architecture arch = architecture::llama;
  std::string architecture_name;  ///< as written in config.json, e.g. "LlamaForCausalLM"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  rope_scaling rope;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;      ///< q/k/v projections carry a bias (Qwen2, or Llama's attention_bias)
  bool o_bias = false;        ///< the output projection carries a bias (Llama's attention_bias)
  int64_t sliding_window = 0; ///< 0: full attention; otherwise each token sees this many positions
  std::string dtype;          ///< "float32", "float16" or "bfloat16" (torch_dtype / dtype)
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  ///< from generation_config.json when present, else config.json
};

/// Tokenizer-side settings from tokenizer_config.json (and chat_template.jinja when present).
struct tokenizer_settings {
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  std::string bos_token;
  std::string eos_token;
  std::string unk_token;
  std::string pad_token;
  std::string chat_template;  ///< empty: the model has none
  int64_t model_max_length = 0;  ///< 0: unknown or unlimited (Hugging Face writes 1e30)
};

/// Reads and validates DIR/config.json plus DIR/generation_config.json when present.
/// Errors name the file and the field.
expected<model_config> load_model_config(const std::filesystem::path& dir);

/// Reads DIR/tokenizer_config.json when present (all fields optional) and DIR/chat_template.jinja.
expected<tokenizer_settings> load_tokenizer_settings(const std::filesystem::path& dir);

const char* to_string(architecture a);

}  // namespace troupe::config
