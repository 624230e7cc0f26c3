// `troupe generate`: continues a prompt with a model on the CPU or CUDA backend and prints the text (or JSON).
#include <cstdio>
#include <string>
#include <thread>

#include <simdjson.h>

#include "app/commands.hpp"
#include "app/json_out.hpp"
#include "app/progress.hpp"
#include "app/prompts_file.hpp"
#include "engine/core/llm.hpp"
#include "engine/generation/generate.hpp"
#include "config/model_config.hpp"
#include "kernels/backend_factory.hpp"

namespace troupe::app {

namespace {

struct generate_args {
  std::string model = TROUPE_DEFAULT_MODEL;
  std::string prompt;
  std::string prompt_ids;  // a JSON array of token ids, instead of text
  int64_t max_tokens = 64;
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  float min_p = 0.0f;
  int64_t seed = -1;
  bool ignore_eos = false;
  bool json = false;
  int threads = 0;
  std::string device = "auto";  // cpu, cuda, cuda:N or auto
  std::string dtype = "auto";  // the CUDA compute type: auto, bfloat16 or float16
  std::string prompts_file;
  engine::llm_options engine;
};

/// Prints one --prompts-file result: sample 0's fields at the top, every sample under "samples".
void print_output(const engine::llm_output& out, bool json) {
  if (!json) {
    if (!out.error.empty()) std::printf("error: %s\n", out.error.c_str());
    for (const auto& s : out.samples) std::printf("%s\n", s.text.c_str());
    return;
  }
  if (!out.error.empty()) {
    std::printf("{\"prompt_ids\":%s,\"error\":%s}\n", json_ids(out.prompt_ids).c_str(),
                json_string(out.error).c_str());
    return;
  }
  auto sample_fields = [](const engine::llm_sample& s) {
    return "\"output_ids\":" + json_ids(s.output_ids) + ",\"text\":" + json_string(s.text) +
           ",\"finish_reason\":" + json_string(s.finish_reason);
  };
  std::string line = "{\"prompt_ids\":" + json_ids(out.prompt_ids) + "," + sample_fields(out.samples[0]) +
                     ",\"samples\":[";
  for (size_t i = 0; i < out.samples.size(); ++i)
    line += (i ? ",{" : "{") + sample_fields(out.samples[i]) + "}";
  std::printf("%s]}\n", line.c_str());
}

/// Runs every line of --prompts-file through the engine at once (continuous batching).
int run_prompts_file(const generate_args& a, engine::llama_model& model, const engine::tokenizer& tok) {
  auto requests = read_prompts_file(a.prompts_file);
  if (!requests) {
    std::fprintf(stderr, "troupe: %s\n", requests.error().message.c_str());
    return 1;
  }
  auto engine = engine::llm::create(model, tok, a.engine);
  if (!engine) {
    std::fprintf(stderr, "troupe: %s\n", engine.error().message.c_str());
    return 1;
  }
  for (const auto& out : (*engine)->generate(*requests)) print_output(out, a.json);
  return 0;
}

/// Parses a JSON array of token ids such as "[1, 403, 407]".
expected<std::vector<int32_t>> parse_ids(const std::string& text) {
  simdjson::dom::parser parser;
  simdjson::dom::array arr;
  if (parser.parse(text).get_array().get(arr) != simdjson::SUCCESS)
    return make_error("--prompt-ids must be a JSON array of token ids, got: ", text);
  std::vector<int32_t> ids;
  for (auto v : arr) {
    int64_t id;
    if (v.get_int64().get(id) != simdjson::SUCCESS || id < 0 || id > INT32_MAX)
      return make_error("--prompt-ids must hold non-negative integers, got: ", text);
    ids.push_back(int32_t(id));
  }
  return ids;
}

int run_generate(const generate_args& a) {
  if (a.prompt.empty() && a.prompt_ids.empty() && a.prompts_file.empty()) {
    std::fprintf(stderr,
                 "troupe: give the prompt with --prompt TEXT, --prompt-ids '[ids]' or --prompts-file FILE\n");
    return 2;
  }
  const int threads = a.threads > 0 ? a.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  auto cfg = config::load_model_config(a.model);
  if (!cfg) {
    std::fprintf(stderr, "troupe: cannot load the model: %s\n", cfg.error().message.c_str());
    return 1;
  }
  auto compute = kernels::parse_compute_dtype(a.dtype, cfg->dtype);
  if (!compute) {
    std::fprintf(stderr, "troupe: %s\n", compute.error().message.c_str());
    return 2;
  }
  std::string note;
  auto backend = kernels::make_backend(a.device, *compute, threads, &note);
  if (!backend) {
    std::fprintf(stderr, "troupe: %s\n", backend.error().message.c_str());
    return 1;
  }
  if (a.device != "cpu") std::fprintf(stderr, "troupe: %s\n", note.c_str());
  auto model = engine::llama_model::load(a.model, **backend, weights_progress_bar());
  if (!model) {
    std::fprintf(stderr, "troupe: cannot load the model: %s\n", model.error().message.c_str());
    return 1;
  }
  auto tok = engine::tokenizer::load(a.model);
  if (!tok) {
    std::fprintf(stderr, "troupe: cannot load the tokenizer: %s\n", tok.error().message.c_str());
    return 1;
  }
  if (!a.prompts_file.empty()) return run_prompts_file(a, **model, *tok);
  engine::generate_options opt;
  opt.max_tokens = a.max_tokens;
  opt.ignore_eos = a.ignore_eos;
  opt.sampling = {.temperature = a.temperature, .top_p = a.top_p, .top_k = a.top_k, .min_p = a.min_p};
  if (a.seed >= 0) opt.sampling.seed = uint64_t(a.seed);
  if (!a.json) {
    opt.on_text = [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
  }
  auto result = [&]() -> expected<engine::generate_result> {
    if (a.prompt_ids.empty()) return engine::generate(**model, *tok, a.prompt, opt);
    auto ids = parse_ids(a.prompt_ids);
    if (!ids) return ids.error();
    return engine::generate_from_ids(**model, *tok, std::move(*ids), opt);
  }();
  if (!result) {
    std::fprintf(stderr, "troupe: %s\n", result.error().message.c_str());
    return 1;
  }
  if (const std::string err = (*backend)->last_error(); !err.empty()) {
    std::fprintf(stderr, "troupe: %s\n", err.c_str());
    return 1;
  }
  if (a.json) {
    std::printf("{\"prompt_ids\":%s,\"output_ids\":%s,\"text\":%s,\"finish_reason\":%s}\n",
                json_ids(result->prompt_ids).c_str(), json_ids(result->output_ids).c_str(),
                json_string(result->text).c_str(), json_string(result->finish_reason).c_str());
  } else {
    std::printf("\n");
  }
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<generate_args>();
  auto* cmd = app.add_subcommand("generate", "Continue a prompt with a model and print the text");
  cmd->add_option("--model", args->model, "Hugging Face model folder")->capture_default_str();
  auto* text = cmd->add_option("--prompt", args->prompt, "The text to continue");
  auto* ids = cmd->add_option("--prompt-ids", args->prompt_ids, "The prompt as a JSON array of token ids");
  auto* file = cmd->add_option("--prompts-file", args->prompts_file,
                               "Run many prompts at once: one JSON object per line with \"prompt\" and the "
                               "sampling fields of the HTTP API (max_tokens, temperature, top_p, top_k, "
                               "min_p, penalties, logit_bias, seed, stop, n, ignore_eos, priority)");
  text->excludes(ids);
  file->excludes(text);
  file->excludes(ids);
  cmd->add_option("--kv-cache-blocks", args->engine.kv_cache_blocks,
                  "KV cache blocks for --prompts-file (0: sized from the limits)")->capture_default_str();
  cmd->add_option("--max-num-seqs", args->engine.max_num_seqs, "Sequences per step at most")
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", args->engine.max_num_batched_tokens, "Tokens per step at most")
      ->capture_default_str();
  cmd->add_option("--admission-reserve", args->engine.admission_reserve,
                  "Fraction of the running requests' room to grow that admission keeps free (0: admit what fits now)")
      ->capture_default_str();
  cmd->add_option("--steps-in-flight", args->engine.steps_in_flight,
                  "Scheduler steps planned ahead of their results (1: one at a time)")
      ->capture_default_str();
  cmd->add_option("--max-tokens", args->max_tokens, "Most tokens to generate")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", args->temperature, "0 is greedy")->capture_default_str();
  cmd->add_option("--top-p", args->top_p, "Nucleus sampling mass in (0, 1]")->capture_default_str();
  cmd->add_option("--top-k", args->top_k, "Keep the k most likely tokens (0: all)")->capture_default_str();
  cmd->add_option("--min-p", args->min_p, "Drop tokens below min_p x the top probability")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed for sampling (same seed, same text)");
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Keep generating past end-of-sequence tokens");
  cmd->add_flag("--json", args->json, "Print one JSON object: prompt_ids, output_ids, text, finish_reason");
  cmd->add_option("--threads", args->threads, "CPU threads (default: all cores)");
  cmd->add_option("--device", args->device, "cpu, cuda, cuda:N, or auto (a GPU when one is usable)")
      ->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "CUDA compute type: auto (from config.json), bfloat16 or float16")
      ->capture_default_str();
  cmd->callback([args] {
    if (int rc = run_generate(*args); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace troupe::app
