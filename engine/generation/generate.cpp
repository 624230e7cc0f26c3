// One prompt, one continuation: prefill, then sample and feed one token at a time.
#include "engine/generation/generate.hpp"

#include <algorithm>

#include "engine/model/sequence_runner.hpp"

namespace troupe::engine {

expected<generate_result> generate(llama_model& model, const tokenizer& tok, std::string_view prompt,
                                   const generate_options& options) {
  auto ids = tok.encode(prompt, options.add_special_tokens);
  if (!ids) return make_error("cannot tokenize the prompt: ", ids.error().message);
  return generate_from_ids(model, tok, std::move(*ids), options);
}

expected<generate_result> generate_from_ids(llama_model& model, const tokenizer& tok,
                                            std::vector<int32_t> prompt_ids,
                                            const generate_options& options) {
  if (auto ok = validate(options.sampling, model.config().vocab_size); !ok) return ok.error();
  if (options.max_tokens < 0) return make_error("max_tokens must be >= 0, got ", options.max_tokens);
  if (prompt_ids.empty()) return make_error("the prompt is empty (no tokens to continue from)");
  const auto& cfg = model.config();
  const int64_t context = cfg.max_position_embeddings;
  const int64_t prompt_len = int64_t(prompt_ids.size());
  if (prompt_len >= context)
    return make_error("the prompt has ", prompt_len, " tokens but the model's context is ", context,
                      " tokens (max_position_embeddings), leaving no room to generate");
  for (int32_t id : prompt_ids)
    if (id < 0 || id >= cfg.vocab_size)
      return make_error("prompt token id ", id, " is outside the vocabulary (size ", cfg.vocab_size, ")");

  const int64_t budget = std::min(options.max_tokens, context - prompt_len);
  auto cache = model.make_kv_cache_for_tokens(prompt_len + budget);
  sequence_runner runner(model, *cache);
  sampler pick(options.sampling, /*fallback_seed=*/0x7472'6f75'7065ull);
  pick.set_prompt(prompt_ids);
  incremental_detokenizer detok(tok);

  generate_result result;
  result.prompt_ids = std::move(prompt_ids);
  result.finish_reason = "length";
  auto emit = [&](std::string piece) {
    if (piece.empty()) return;
    if (options.on_text) options.on_text(piece);
    result.text += piece;
  };

  auto logits = runner.feed(result.prompt_ids);
  for (int64_t step = 0; step < budget; ++step) {
    if (!logits) return logits.error();
    const int32_t next = pick.sample(*logits);
    const bool eos = std::find(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end(), next) !=
                     cfg.eos_token_ids.end();
    if (eos && !options.ignore_eos) {
      result.finish_reason = "stop";
      break;
    }
    result.output_ids.push_back(next);
    emit(detok.push(next));
    if (step + 1 < budget) logits = runner.feed(std::span<const int32_t>(&next, 1));
  }
  emit(detok.finish());
  return result;
}

}  // namespace troupe::engine
