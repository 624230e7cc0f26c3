// Reads and validates a Hugging Face model folder's config.json, generation_config.json and
// tokenizer_config.json (untrusted input: every error names the file and the field).
#include "config/model_config.hpp"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "config/json_fields.hpp"

namespace troupe::config {
namespace {

namespace fs = std::filesystem;
using simdjson::dom::element;

expected<void> parse_architecture(field_reader& r, model_config& c) {
  std::string name;
  if (auto e = r.find("architectures")) {
    element first;
    if (!e->is_array() || simdjson::dom::array(*e).at(0).get(first) || !first.is_string())
      return make_error(r.file(), ": field \"architectures\" must be a non-empty list of strings");
    name = std::string(std::string_view(first));
  } else {
    return make_error(r.file(), ": field \"architectures\" is missing");
  }
  c.architecture_name = name;
  if (name == "LlamaForCausalLM") c.arch = architecture::llama;
  else if (name == "MistralForCausalLM") c.arch = architecture::mistral;
  else if (name == "Qwen2ForCausalLM") c.arch = architecture::qwen2;
  else return make_error(r.file(), ": field \"architectures\": unsupported architecture \"", name,
                    "\" (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
  return {};
}

// rope_theta and scaling, from the legacy rope_theta + rope_scaling or from v5's rope_parameters.
void parse_rope(field_reader& r, model_config& c) {
  if (auto t = r.opt_double("rope_theta")) c.rope_theta = *t;
  auto params = r.opt_object("rope_parameters");
  auto scaling = params ? params : r.opt_object("rope_scaling");
  if (!scaling) return;
  if (auto t = scaling->opt_double("rope_theta")) c.rope_theta = *t;
  auto type = scaling->opt_string("rope_type");
  if (!type) type = scaling->opt_string("type");
  std::string kind = type.value_or("default");
  if (kind == "default" || kind == "none") {
    c.rope.type = rope_scaling_type::none;
  } else if (kind == "linear") {
    c.rope.type = rope_scaling_type::linear;
    c.rope.factor = scaling->req_double("factor");
  } else if (kind == "llama3") {
    c.rope.type = rope_scaling_type::llama3;
    c.rope.factor = scaling->req_double("factor");
    c.rope.low_freq_factor = scaling->req_double("low_freq_factor");
    c.rope.high_freq_factor = scaling->req_double("high_freq_factor");
    c.rope.original_max_position_embeddings =
        scaling->req_int("original_max_position_embeddings");
    if (c.rope.high_freq_factor <= c.rope.low_freq_factor)
      scaling->fail("high_freq_factor", "must be greater than low_freq_factor");
    if (c.rope.original_max_position_embeddings <= 0)
      scaling->fail("original_max_position_embeddings", "must be positive");
  } else {
    scaling->fail(type && scaling->has("rope_type") ? "rope_type" : "type",
                  "names an unsupported RoPE scaling type \"" + kind +
                      "\" (supported: default, linear, llama3)");
  }
  if (c.rope.type != rope_scaling_type::none && !(c.rope.factor > 0))
    scaling->fail("factor", "must be positive");
}

// Sliding-window attention: Mistral's sliding_window; Qwen2's only when use_sliding_window.
void parse_sliding_window(field_reader& r, model_config& c) {
  if (c.arch == architecture::llama) return;
  if (c.arch == architecture::qwen2 && !r.opt_bool("use_sliding_window").value_or(false)) return;
  c.sliding_window = r.opt_int("sliding_window").value_or(0);
  if (c.sliding_window < 0) r.fail("sliding_window", "must not be negative");
  if (c.arch == architecture::qwen2 && c.sliding_window > 0) {
    // Qwen2 slides only in layers >= max_window_layers; one window for all layers or none.
    int64_t from = r.opt_int("max_window_layers").value_or(0);
    if (from >= c.num_hidden_layers) c.sliding_window = 0;
    else if (from > 0)
      r.fail("max_window_layers", "selects sliding attention for some layers only (unsupported)");
  }
}

void validate(field_reader& r, model_config& c) {
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) r.fail(key, "must be positive, found " + std::to_string(v));
  };
  positive("hidden_size", c.hidden_size);
  positive("intermediate_size", c.intermediate_size);
  positive("num_hidden_layers", c.num_hidden_layers);
  positive("num_attention_heads", c.num_attention_heads);
  positive("num_key_value_heads", c.num_key_value_heads);
  positive("vocab_size", c.vocab_size);
  positive("max_position_embeddings", c.max_position_embeddings);
  positive("head_dim", c.head_dim);
  if (c.num_attention_heads > 0 && c.num_key_value_heads > 0 &&
      c.num_attention_heads % c.num_key_value_heads != 0)
    r.fail("num_key_value_heads", "(" + std::to_string(c.num_key_value_heads) +
                                      ") must divide num_attention_heads (" +
                                      std::to_string(c.num_attention_heads) + ")");
  if (c.head_dim > 0 && c.head_dim % 2 != 0)
    r.fail("head_dim", "must be even for RoPE, found " + std::to_string(c.head_dim));
  if (!(c.rms_norm_eps > 0)) r.fail("rms_norm_eps", "must be positive");
  if (!(c.rope_theta > 0)) r.fail("rope_theta", "must be positive");
  constexpr int64_t limit = int64_t(1) << 31;  // keeps every product of two sizes in int64
  for (auto [key, v] : {std::pair{"hidden_size", c.hidden_size},
                        {"intermediate_size", c.intermediate_size},
                        {"vocab_size", c.vocab_size},
                        {"num_attention_heads", c.num_attention_heads},
                        {"head_dim", c.head_dim}})
    if (v >= limit) r.fail(key, "is implausibly large: " + std::to_string(v));
  if (c.num_hidden_layers > 65536)
    r.fail("num_hidden_layers", "is implausibly large: " + std::to_string(c.num_hidden_layers));
}

// head_dim: explicit, else hidden_size / num_attention_heads (which must divide).
void parse_head_dim(field_reader& r, model_config& c) {
  if (auto h = r.opt_int("head_dim")) {
    c.head_dim = *h;
  } else if (c.num_attention_heads > 0) {
    if (c.hidden_size % c.num_attention_heads != 0)
      r.fail("num_attention_heads", "(" + std::to_string(c.num_attention_heads) +
                                        ") must divide hidden_size (" +
                                        std::to_string(c.hidden_size) + ")");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
}

// bos/eos ids: generation_config.json's when it has them, else config.json's; within the vocabulary.
expected<void> parse_special_ids(field_reader& r, model_config& c, const fs::path& dir) {
  c.bos_token_id = r.opt_int("bos_token_id");
  c.eos_token_ids = r.int_list("eos_token_id");
  fs::path source = r.file();
  fs::path gen = dir / "generation_config.json";
  std::error_code ec;
  std::optional<error> gen_err;
  json_file g;
  if (fs::exists(gen, ec)) {
    if (auto ok = load_json(g, gen); !ok) return ok.error();
    field_reader gr(gen, g.root, &gen_err);
    if (gr.has("bos_token_id") || gr.has("eos_token_id")) source = gen;
    if (gr.has("bos_token_id")) c.bos_token_id = gr.opt_int("bos_token_id");
    if (gr.has("eos_token_id")) c.eos_token_ids = gr.int_list("eos_token_id");
    if (gen_err) return *gen_err;
  }
  auto in_vocab = [&](int64_t id) { return id >= 0 && id < c.vocab_size; };
  if (c.bos_token_id && !in_vocab(*c.bos_token_id))
    return make_error(source, ": bos_token_id ", *c.bos_token_id, " is outside the vocabulary (",
                      c.vocab_size, ")");
  for (int64_t id : c.eos_token_ids)
    if (!in_vocab(id))
      return make_error(source, ": eos_token_id ", id, " is outside the vocabulary (",
                        c.vocab_size, ")");
  return {};
}

}  // namespace

const char* to_string(architecture a) {
  switch (a) {
    case architecture::llama: return "llama";
    case architecture::mistral: return "mistral";
    case architecture::qwen2: return "qwen2";
  }
  return "?";
}

expected<model_config> load_model_config(const fs::path& dir) {
  json_file f;
  if (auto ok = load_json(f, dir / "config.json"); !ok) return ok.error();
  std::optional<error> err;
  field_reader r(f.path, f.root, &err);
  model_config c;
  if (auto ok = parse_architecture(r, c); !ok) return ok.error();
  c.hidden_size = r.req_int("hidden_size");
  c.intermediate_size = r.req_int("intermediate_size");
  c.num_hidden_layers = r.req_int("num_hidden_layers");
  c.num_attention_heads = r.req_int("num_attention_heads");
  c.num_key_value_heads = r.opt_int("num_key_value_heads").value_or(c.num_attention_heads);
  c.vocab_size = r.req_int("vocab_size");
  c.max_position_embeddings = r.opt_int("max_position_embeddings").value_or(2048);
  c.rms_norm_eps = r.opt_double("rms_norm_eps").value_or(1e-6);
  c.tie_word_embeddings = r.opt_bool("tie_word_embeddings").value_or(false);
  parse_head_dim(r, c);
  parse_rope(r, c);
  parse_sliding_window(r, c);
  if (auto act = r.opt_string("hidden_act"); act && *act != "silu")
    r.fail("hidden_act", "is \"" + *act + "\"; only silu is supported");
  if (r.opt_bool("mlp_bias").value_or(false)) r.fail("mlp_bias", "is true (unsupported)");
  if (c.arch == architecture::qwen2) c.qkv_bias = true;
  if (c.arch == architecture::llama && r.opt_bool("attention_bias").value_or(false))
    c.qkv_bias = c.o_bias = true;
  auto dtype = r.opt_string("torch_dtype");
  if (!dtype) dtype = r.opt_string("dtype");
  c.dtype = dtype.value_or("float32");
  if (c.dtype != "float32" && c.dtype != "float16" && c.dtype != "bfloat16")
    r.fail(r.has("torch_dtype") ? "torch_dtype" : "dtype",
           "is \"" + c.dtype + "\"; supported: float32, float16, bfloat16");
  if (err) return *err;
  validate(r, c);
  if (err) return *err;
  auto ids = parse_special_ids(r, c, dir);
  if (err) return *err;
  if (!ids) return ids.error();
  return c;
}

namespace {

// A special token: a string, or an AddedToken object {"content": ..., ...}; absent or null: "".
std::string special_token(field_reader& r, std::string_view key) {
  auto e = r.find(key);
  if (!e) return {};
  if (e->is_string()) return std::string(std::string_view(*e));
  if (e->is_object()) {
    std::string_view content;
    if (!(*e)["content"].get(content)) return std::string(content);
  }
  r.fail(key, "must be a string or an object with a string \"content\"");
  return {};
}

// chat_template: a string, or a list of {"name", "template"} of which "default" is taken.
std::string chat_template(field_reader& r) {
  auto e = r.find("chat_template");
  if (!e) return {};
  if (e->is_string()) return std::string(std::string_view(*e));
  if (e->is_array()) {
    for (element item : simdjson::dom::array(*e)) {
      std::string_view name, text;
      if (item["name"].get(name) || item["template"].get(text)) {
        r.fail("chat_template", "list entries must have string \"name\" and \"template\"");
        return {};
      }
      if (name == "default") return std::string(text);
    }
    return {};
  }
  r.fail("chat_template", "must be a string or a list of {name, template}");
  return {};
}

}  // namespace

expected<tokenizer_settings> load_tokenizer_settings(const fs::path& dir) {
  tokenizer_settings t;
  std::error_code ec;
  fs::path file = dir / "tokenizer_config.json";
  json_file f;
  if (fs::exists(file, ec)) {
    if (auto ok = load_json(f, file); !ok) return ok.error();
    std::optional<error> err;
    field_reader r(f.path, f.root, &err);
    t.add_bos_token = r.opt_bool("add_bos_token");
    t.add_eos_token = r.opt_bool("add_eos_token");
    t.bos_token = special_token(r, "bos_token");
    t.eos_token = special_token(r, "eos_token");
    t.unk_token = special_token(r, "unk_token");
    t.pad_token = special_token(r, "pad_token");
    t.chat_template = chat_template(r);
    // Hugging Face writes 1e30 for "no limit": keep 0 (unknown) for anything beyond int64.
    if (auto e = r.find("model_max_length"); e && e->is_double() && double(*e) >= 9.0e18)
      t.model_max_length = 0;
    else
      t.model_max_length = r.opt_int("model_max_length").value_or(0);
    if (t.model_max_length < 0) r.fail("model_max_length", "must not be negative");
    if (err) return *err;
  }
  fs::path jinja = dir / "chat_template.jinja";
  if (fs::exists(jinja, ec)) {  // transformers v5 keeps the template here; it wins
    std::ifstream in(jinja, std::ios::binary);
    if (!in) return make_error(jinja, ": cannot open file");
    std::ostringstream ss;
    ss << in.rdbuf();
    t.chat_template = ss.str();
  }
  return t;
}

}  // namespace troupe::config
