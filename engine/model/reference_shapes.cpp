// The reference workloads' model shapes and parameter counts.
#include "engine/model/reference_shapes.hpp"

#include <string>

namespace troupe::engine {

expected<config::model_config> reference_shape(std::string_view name) {
  config::model_config c;
  c.architecture_name = "LlamaForCausalLM";
  c.hidden_size = 4096;
  c.num_hidden_layers = 32;
  c.num_attention_heads = 32;
  c.head_dim = 128;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  c.eos_token_ids = {2};
  if (name == "llama3-8b") {
    c.intermediate_size = 14336;
    c.num_key_value_heads = 8;
    c.vocab_size = 128256;
    c.rope_theta = 500000.0;
    c.max_position_embeddings = 8192;
  } else if (name == "llama2-7b") {
    c.intermediate_size = 11008;
    c.num_key_value_heads = 32;
    c.vocab_size = 32000;
  } else {
    return make_error("unknown model shape '", std::string(name), "' (expected llama2-7b or llama3-8b)");
  }
  return c;
}

int64_t layer_parameter_count(const config::model_config& c) {
  return c.hidden_size * c.head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads) +
         3 * c.hidden_size * c.intermediate_size + 2 * c.hidden_size;
}

int64_t parameter_count(const config::model_config& c) {
  return 2 * c.vocab_size * c.hidden_size + c.num_hidden_layers * layer_parameter_count(c) + c.hidden_size;
}

}  // namespace troupe::engine
