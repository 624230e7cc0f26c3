// offline_generate: many prompts at once through engine::llm on the CPU backend (no actors, no HTTP).
//
//   example_offline_generate [MODEL_DIR]
//
// Runs a few prompts (one with n = 2 seeded samples, one with a stop string) with continuous
// batching, prefix caching and chunked prefill, and prints each output with its finish reason.
#include <cstdio>
#include <string>
#include <vector>

#include "engine/core/llm.hpp"
#include "kernels/cpu/cpu_backend.hpp"

using namespace troupe;

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : TROUPE_DEFAULT_MODEL;
  kernels::cpu::cpu_backend backend(1);
  auto model = engine::llama_model::load(dir, backend);
  if (!model) {
    std::fprintf(stderr, "cannot load the model: %s\n", model.error().message.c_str());
    return 1;
  }
  auto tok = engine::tokenizer::load(dir);
  if (!tok) {
    std::fprintf(stderr, "cannot load the tokenizer: %s\n", tok.error().message.c_str());
    return 1;
  }
  engine::llm_options options;
  options.kv_cache_blocks = 64;
  options.max_num_batched_tokens = 64;
  auto engine = engine::llm::create(**model, *tok, options);
  if (!engine) {
    std::fprintf(stderr, "cannot start the engine: %s\n", engine.error().message.c_str());
    return 1;
  }

  std::vector<engine::llm_request> requests(4);
  requests[0].prompt = "Once upon a time";
  requests[0].params.sampling.temperature = 0.0f;
  requests[0].params.max_tokens = 40;
  requests[1].prompt = "Once upon a time";
  requests[1].params.sampling.temperature = 0.8f;
  requests[1].params.sampling.seed = 7;
  requests[1].params.max_tokens = 40;
  requests[1].params.n = 2;
  requests[2].prompt = "The little dog";
  requests[2].params.sampling.temperature = 0.0f;
  requests[2].params.max_tokens = 60;
  requests[2].params.stop = {"."};
  requests[3].prompt = "Lily and Tom went to the park.";
  requests[3].params.sampling.top_p = 0.9f;
  requests[3].params.sampling.seed = 1;
  requests[3].params.max_tokens = 60;

  auto outputs = (*engine)->generate(requests);
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& out = outputs[i];
    std::printf("[%zu] prompt: %s (%zu tokens)\n", i, requests[i].prompt.c_str(), out.prompt_ids.size());
    if (!out.error.empty()) std::printf("    rejected: %s\n", out.error.c_str());
    for (size_t s = 0; s < out.samples.size(); ++s)
      std::printf("    sample %zu (%zu tokens, %s%s%s): %s\n", s, out.samples[s].output_ids.size(),
                  out.samples[s].finish_reason.c_str(), out.samples[s].stop_reason.empty() ? "" : " ",
                  out.samples[s].stop_reason.c_str(), out.samples[s].text.c_str());
  }
  const auto stats = (*engine)->engine_scheduler().kv().stats();
  std::printf("%llu steps, %llu tokens computed, prefix cache hits %lld of %lld prompt tokens\n",
              static_cast<unsigned long long>((*engine)->steps()),
              static_cast<unsigned long long>((*engine)->computed_tokens()),
              static_cast<long long>(stats.prefix_hits), static_cast<long long>(stats.prefix_queries));
  return 0;
}
