// Generates one continuation of one prompt with a model, a tokenizer and a sampler (no batching):
// the engine alone is enough to produce text.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "config/error.hpp"
#include "engine/model/llama_model.hpp"
#include "engine/sampling/sampler.hpp"
#include "engine/tokenizer/tokenizer.hpp"

namespace troupe::engine {

struct generate_options {
  int64_t max_tokens = 64;
  sampling_params sampling;
  bool ignore_eos = false;
  bool add_special_tokens = true;
  /// Called with each piece of complete UTF-8 text as it is produced (may be empty: no streaming).
  std::function<void(std::string_view)> on_text;
};

struct generate_result {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> output_ids;
  std::string text;
  std::string finish_reason;  ///< "stop" (an end-of-sequence token) or "length"
};

/// Encodes `prompt`, runs it, and samples up to max_tokens tokens, stopping at the model's
/// end-of-sequence ids unless ignore_eos. A prompt that leaves no room in the model's context is an
/// error; generation that reaches the end of the context stops with "length".
expected<generate_result> generate(llama_model& model, const tokenizer& tok, std::string_view prompt,
                                   const generate_options& options);

/// The same from prompt ids.
expected<generate_result> generate_from_ids(llama_model& model, const tokenizer& tok,
                                            std::vector<int32_t> prompt_ids,
                                            const generate_options& options);

}  // namespace troupe::engine
