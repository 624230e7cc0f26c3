// Shared by engine and actor tests: the bundled model and its tokenizer on a one-thread CPU backend,
// loaded once per test program, prompts for it, and a request run alone through engine::generate
// (the reference that batched runs must equal).
#pragma once

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "engine/core/request.hpp"
#include "engine/generation/generate.hpp"
#include "kernels/cpu/cpu_backend.hpp"

namespace troupe::engine::testing {

struct bundled_model {
  kernels::cpu::cpu_backend backend{1};
  std::unique_ptr<llama_model> model;
  std::unique_ptr<tokenizer> tok;
  bundled_model() {
    auto m = llama_model::load(TROUPE_DEFAULT_MODEL, backend);
    REQUIRE(m.has_value());
    model = std::move(*m);
    auto t = tokenizer::load(TROUPE_DEFAULT_MODEL);
    REQUIRE(t.has_value());
    tok = std::make_unique<tokenizer>(std::move(*t));
  }
};

inline bundled_model& the() {
  static bundled_model m;
  return m;
}

/// Prompts of the bundled model's kind of text, short and long, for batched runs.
inline const std::vector<std::string>& story_prompts() {
  static const std::vector<std::string> p = {
      "Once upon a time",
      "Once upon a time, there was a little girl named Lily. She loved to play with her toys.",
      "Tom had a big red ball.",
      "One day, a cat and a dog went to the park to play. The sun was shining and the birds sang.",
      "The little bird",
      "Sara and Ben were best friends. They liked to play in the garden every day after lunch.",
  };
  return p;
}

/// The same request run alone through engine::generate.
inline generate_result alone(const std::vector<int32_t>& prompt, const request_params& p) {
  generate_options o;
  o.max_tokens = p.max_tokens;
  o.sampling = p.sampling;
  o.ignore_eos = p.ignore_eos;
  auto r = generate_from_ids(*the().model, *the().tok, prompt, o);
  REQUIRE(r.has_value());
  return std::move(*r);
}

}  // namespace troupe::engine::testing
