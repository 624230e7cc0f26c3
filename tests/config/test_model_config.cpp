// Tests for load_model_config and load_tokenizer_settings: the bundled model, each supported
// architecture and RoPE scaling form, and config files that must be rejected with clear errors.
#include <catch2/catch.hpp>

#include <fstream>
#include <random>

#include "config/model_config.hpp"

namespace fs = std::filesystem;
using namespace troupe::config;

namespace {

/// A fresh temporary folder, removed at the end of the test.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("troupe_cfg_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
};

const std::string llama_base = R"("hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 2,
  "num_attention_heads": 8, "vocab_size": 1000, "hidden_act": "silu")";

/// config.json for a Llama model with extra fields appended.
std::string llama(const std::string& extra = "") {
  return R"({"architectures": ["LlamaForCausalLM"], )" + llama_base +
         (extra.empty() ? "" : ", " + extra) + "}";
}

/// The error message of loading a config.json with this text (empty when it loads).
std::string config_error(const std::string& text) {
  temp_dir d;
  d.write("config.json", text);
  auto c = load_model_config(d.path);
  return c ? std::string() : c.error().message;
}

model_config load_ok(const std::string& text) {
  temp_dir d;
  d.write("config.json", text);
  auto c = load_model_config(d.path);
  INFO((c ? std::string() : c.error().message));
  REQUIRE(c);
  return *c;
}

}  // namespace

TEST_CASE("the bundled stories260k config loads with exact values") {
  auto c = load_model_config(TROUPE_DEFAULT_MODEL);
  REQUIRE(c);
  CHECK(c->arch == architecture::llama);
  CHECK(c->architecture_name == "LlamaForCausalLM");
  CHECK(c->hidden_size == 64);
  CHECK(c->intermediate_size == 172);
  CHECK(c->num_hidden_layers == 5);
  CHECK(c->num_attention_heads == 8);
  CHECK(c->num_key_value_heads == 4);
  CHECK(c->head_dim == 8);
  CHECK(c->vocab_size == 512);
  CHECK(c->max_position_embeddings == 512);
  CHECK(c->rms_norm_eps == 1e-5);
  CHECK(c->rope_theta == 10000.0);
  CHECK(c->rope.type == rope_scaling_type::none);
  CHECK(c->tie_word_embeddings);
  CHECK_FALSE(c->qkv_bias);
  CHECK_FALSE(c->o_bias);
  CHECK(c->sliding_window == 0);
  CHECK(c->dtype == "float32");
  CHECK(c->bos_token_id == 1);
  CHECK(c->eos_token_ids == std::vector<int64_t>{2});
  CHECK(std::string(to_string(c->arch)) == "llama");

  auto t = load_tokenizer_settings(TROUPE_DEFAULT_MODEL);
  REQUIRE(t);
  CHECK(t->add_bos_token == true);
  CHECK(t->add_eos_token == false);
  CHECK(t->bos_token == "<s>");
  CHECK(t->eos_token == "</s>");
  CHECK(t->unk_token == "<unk>");
  CHECK(t->pad_token.empty());
  CHECK(t->chat_template.empty());
  CHECK(t->model_max_length == 512);
}

TEST_CASE("defaults: kv heads, head_dim, theta, dtype, tying") {
  auto c = load_ok(llama());
  CHECK(c.num_key_value_heads == 8);
  CHECK(c.head_dim == 32);
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.rms_norm_eps == 1e-6);
  CHECK(c.max_position_embeddings == 2048);
  CHECK(c.dtype == "float32");
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK_FALSE(c.bos_token_id);
  CHECK(c.eos_token_ids.empty());
  auto e = load_ok(llama(R"("head_dim": 64, "num_key_value_heads": null, "dtype": "bfloat16",
                            "attention_bias": true, "eos_token_id": [5, 7], "bos_token_id": null)"));
  CHECK(e.head_dim == 64);  // explicit, not hidden / heads
  CHECK(e.num_key_value_heads == 8);
  CHECK(e.dtype == "bfloat16");
  CHECK(e.qkv_bias);
  CHECK(e.o_bias);
  CHECK(e.eos_token_ids == std::vector<int64_t>{5, 7});
}

TEST_CASE("Mistral: sliding window, null meaning none") {
  auto m = load_ok(R"({"architectures": ["MistralForCausalLM"], )" + llama_base +
                   R"(, "num_key_value_heads": 2, "sliding_window": 4096, "torch_dtype": "float16",
                   "rope_theta": 1000000.0})");
  CHECK(m.arch == architecture::mistral);
  CHECK(m.sliding_window == 4096);
  CHECK(m.num_key_value_heads == 2);
  CHECK(m.dtype == "float16");
  CHECK(m.rope_theta == 1000000.0);
  CHECK_FALSE(m.qkv_bias);
  auto n = load_ok(R"({"architectures": ["MistralForCausalLM"], )" + llama_base +
                   R"(, "sliding_window": null})");
  CHECK(n.sliding_window == 0);
}

TEST_CASE("Qwen2: q/k/v biases, sliding window only when enabled") {
  const std::string head = R"({"architectures": ["Qwen2ForCausalLM"], )" + llama_base;
  auto q = load_ok(head + R"(, "sliding_window": 32768, "use_sliding_window": false,
                             "max_window_layers": 2, "tie_word_embeddings": true})");
  CHECK(q.arch == architecture::qwen2);
  CHECK(q.qkv_bias);
  CHECK_FALSE(q.o_bias);
  CHECK(q.sliding_window == 0);
  CHECK(q.tie_word_embeddings);
  auto s = load_ok(head + R"(, "sliding_window": 128, "use_sliding_window": true,
                             "max_window_layers": 0})");
  CHECK(s.sliding_window == 128);
  auto all_full = load_ok(head + R"(, "sliding_window": 128, "use_sliding_window": true,
                                    "max_window_layers": 2})");
  CHECK(all_full.sliding_window == 0);
  CHECK_THAT(config_error(head + R"(, "sliding_window": 128, "use_sliding_window": true,
                                    "max_window_layers": 1})"),
             Catch::Contains("max_window_layers"));
}

TEST_CASE("llama3 rope scaling, legacy rope_scaling and v5 rope_parameters") {
  const std::string legacy = llama(R"("rope_theta": 500000.0, "rope_scaling": {"factor": 8.0,
      "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
      "rope_type": "llama3"})");
  const std::string v5 = llama(R"("rope_parameters": {"rope_type": "llama3", "rope_theta": 500000,
      "factor": 32.0, "low_freq_factor": 2.0, "high_freq_factor": 6.0,
      "original_max_position_embeddings": 4096})");
  auto a = load_ok(legacy);
  CHECK(a.rope.type == rope_scaling_type::llama3);
  CHECK(a.rope_theta == 500000.0);
  CHECK(a.rope.factor == 8.0);
  CHECK(a.rope.low_freq_factor == 1.0);
  CHECK(a.rope.high_freq_factor == 4.0);
  CHECK(a.rope.original_max_position_embeddings == 8192);
  auto b = load_ok(v5);
  CHECK(b.rope.type == rope_scaling_type::llama3);
  CHECK(b.rope_theta == 500000.0);
  CHECK(b.rope.factor == 32.0);
  CHECK(b.rope.low_freq_factor == 2.0);
  CHECK(b.rope.high_freq_factor == 6.0);
  CHECK(b.rope.original_max_position_embeddings == 4096);
}

TEST_CASE("linear and default rope scaling in both spellings") {
  auto a = load_ok(llama(R"("rope_scaling": {"type": "linear", "factor": 2.0})"));
  CHECK(a.rope.type == rope_scaling_type::linear);
  CHECK(a.rope.factor == 2.0);
  auto b = load_ok(llama(R"("rope_parameters": {"rope_type": "linear", "factor": 4,
                                               "rope_theta": 20000.0})"));
  CHECK(b.rope.type == rope_scaling_type::linear);
  CHECK(b.rope.factor == 4.0);
  CHECK(b.rope_theta == 20000.0);
  auto c = load_ok(llama(R"("rope_parameters": {"rope_type": "default", "rope_theta": 1e6})"));
  CHECK(c.rope.type == rope_scaling_type::none);
  CHECK(c.rope_theta == 1e6);
  auto d = load_ok(llama(R"("rope_scaling": null)"));
  CHECK(d.rope.type == rope_scaling_type::none);
}

TEST_CASE("config errors name the file and the field") {
  auto has = [](const std::string& msg, std::initializer_list<const char*> parts) {
    INFO(msg);
    CHECK_THAT(msg, Catch::Contains("config.json"));
    for (const char* p : parts) CHECK_THAT(msg, Catch::Contains(p));
  };
  has(config_error(R"({"architectures": ["GPT2LMHeadModel"], "hidden_size": 8})"),
      {"architectures", "GPT2LMHeadModel", "unsupported"});
  has(config_error(R"({"hidden_size": 8})"), {"architectures", "missing"});
  has(config_error(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
      "intermediate_size": 10, "num_attention_heads": 8, "vocab_size": 10})"),
      {"num_hidden_layers", "missing"});
  has(config_error(llama(R"("num_key_value_heads": "4")")),
      {"num_key_value_heads", "must be an integer", "string"});
  has(config_error(llama(R"("rope_scaling": {"type": "yarn", "factor": 4.0})")),
      {"rope_scaling.type", "yarn", "unsupported"});
  has(config_error(llama(R"("rope_parameters": {"rope_type": "dynamic", "factor": 2.0})")),
      {"rope_parameters.rope_type", "dynamic"});
  has(config_error(llama(R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0})")),
      {"rope_scaling.low_freq_factor", "missing"});
  has(config_error(llama(R"("rope_scaling": {"type": "linear", "factor": 0})")),
      {"rope_scaling.factor", "positive"});
  has(config_error(llama(R"("num_key_value_heads": 3)")),
      {"num_key_value_heads", "must divide num_attention_heads"});
  has(config_error(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 100,
      "intermediate_size": 10, "num_hidden_layers": 1, "num_attention_heads": 8, "vocab_size": 10})"),
      {"num_attention_heads", "must divide hidden_size"});
  has(config_error(llama(R"("vocab_size": 0)")), {"vocab_size", "positive"});
  has(config_error(llama(R"("vocab_size": 18446744073709551615)")),
      {"vocab_size", "not an integer within range"});
  has(config_error(llama(R"("hidden_size": 64.5)")), {"hidden_size", "not an integer"});
  has(config_error(llama(R"("intermediate_size": 4294967296)")),
      {"intermediate_size", "implausibly large"});
  has(config_error(llama(R"("num_hidden_layers": 1000000000000)")),
      {"num_hidden_layers", "implausibly large"});
  has(config_error(llama(R"("head_dim": 7)")), {"head_dim", "even"});
  has(config_error(llama(R"("hidden_act": "gelu")")), {"hidden_act", "gelu"});
  has(config_error(llama(R"("mlp_bias": true)")), {"mlp_bias", "unsupported"});
  has(config_error(llama(R"("torch_dtype": "int8")")), {"torch_dtype", "int8"});
  has(config_error(llama(R"("tie_word_embeddings": 1)")), {"tie_word_embeddings", "true or false"});
  has(config_error(llama(R"("eos_token_id": 1000)")), {"eos_token_id", "outside the vocabulary"});
  has(config_error(llama(R"("eos_token_id": [1, "x"])")), {"eos_token_id", "list of integers"});
  has(config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": "),
      {"not valid JSON"});
  has(config_error("[1, 2]"), {"not a JSON object"});
}

TEST_CASE("a missing config.json is an error naming it") {
  temp_dir d;
  auto c = load_model_config(d.path);
  REQUIRE_FALSE(c);
  CHECK_THAT(c.error().message, Catch::Contains("config.json") && Catch::Contains("cannot open"));
}

TEST_CASE("generation_config.json overrides bos and eos") {
  temp_dir d;
  d.write("config.json", llama(R"("bos_token_id": 1, "eos_token_id": 2)"));
  d.write("generation_config.json", R"({"eos_token_id": [2, 9], "max_length": 100})");
  auto c = load_model_config(d.path);
  REQUIRE(c);
  CHECK(c->bos_token_id == 1);
  CHECK(c->eos_token_ids == std::vector<int64_t>{2, 9});
  d.write("generation_config.json", R"({"eos_token_id": 3.5})");
  auto bad = load_model_config(d.path);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message,
             Catch::Contains("generation_config.json") && Catch::Contains("eos_token_id"));
}

TEST_CASE("tokenizer settings: AddedToken objects, template lists, jinja file, huge max length") {
  temp_dir d;
  d.write("tokenizer_config.json", R"({"add_bos_token": false,
    "bos_token": {"content": "<|begin|>", "lstrip": false, "__type": "AddedToken"},
    "eos_token": "<|end|>", "pad_token": null,
    "model_max_length": 1000000000000000019884624838656,
    "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})");
  auto t = load_tokenizer_settings(d.path);
  INFO((t ? std::string() : t.error().message));
  REQUIRE(t);
  CHECK(t->add_bos_token == false);
  CHECK_FALSE(t->add_eos_token);
  CHECK(t->bos_token == "<|begin|>");
  CHECK(t->eos_token == "<|end|>");
  CHECK(t->pad_token.empty());
  CHECK(t->model_max_length == 0);
  CHECK(t->chat_template == "D");
  d.write("chat_template.jinja", "{{ messages }}\n");
  auto j = load_tokenizer_settings(d.path);
  REQUIRE(j);
  CHECK(j->chat_template == "{{ messages }}\n");

  d.write("tokenizer_config.json", R"({"eos_token": 5})");
  auto bad = load_tokenizer_settings(d.path);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message,
             Catch::Contains("tokenizer_config.json") && Catch::Contains("eos_token"));
  temp_dir empty;
  auto none = load_tokenizer_settings(empty.path);
  REQUIRE(none);
  CHECK(none->chat_template.empty());
  CHECK_FALSE(none->add_bos_token);
}
