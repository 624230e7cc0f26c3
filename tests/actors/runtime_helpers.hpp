// Shared by the actor-layer tests: starting a runtime on the bundled model, collecting a stream,
// running the same requests through engine::llm, and runtimes whose backend fails on command.
#pragma once

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "actors/runtime.hpp"
#include "engine/core/llm.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "tests/engine/bundled_model.hpp"
#include "tests/engine/failing_backend.hpp"

namespace troupe::test {

/// One sample as the stream delivered it.
struct collected_sample {
  std::vector<int32_t> ids;
  std::string text;
  std::string finish_reason, stop_reason;
  int32_t events = 0;
};

/// Takes every event of a stream (failing the test after `limit`); samples in order.
inline std::vector<collected_sample> collect(request_stream& s, int32_t n,
                                             std::chrono::seconds limit = std::chrono::seconds(60)) {
  std::vector<collected_sample> out(static_cast<size_t>(n));
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!s.done()) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    auto ev = s.next(std::chrono::milliseconds(100));
    if (!ev) continue;
    REQUIRE(ev->sample >= 0);
    REQUIRE(ev->sample < n);
    auto& c = out[size_t(ev->sample)];
    REQUIRE(c.finish_reason.empty());  // nothing after a sample's final event
    c.ids.insert(c.ids.end(), ev->token_ids.begin(), ev->token_ids.end());
    c.text += ev->text;
    ++c.events;
    if (ev->finished) {
      c.finish_reason = ev->finish_reason;
      c.stop_reason = ev->stop_reason;
    }
  }
  return out;
}

inline engine::llm_options small_engine() {
  engine::llm_options o;
  o.kv_cache_blocks = 96;
  o.max_num_seqs = 16;
  o.max_num_batched_tokens = 64;  // long prompts are prefilled in chunks
  return o;
}

inline runtime_options options_for(const engine::llm_options& e) {
  runtime_options o;
  o.model_dir = TROUPE_DEFAULT_MODEL;
  o.engine = e;
  o.cpu_threads = 1;
  return o;
}

inline std::unique_ptr<runtime> start(const runtime_options& o) {
  auto rt = runtime::start(o);
  if (!rt) FAIL(rt.error().message);
  return std::move(*rt);
}

/// engine::llm over the bundled model (tests/engine/bundled_model.hpp): the reference runtime outputs
/// must equal.
struct reference_engine {
  engine::tokenizer* tok = engine::testing::the().tok.get();
  std::vector<engine::llm_output> run(const std::vector<engine::llm_request>& in, const engine::llm_options& o) {
    auto e = engine::llm::create(*engine::testing::the().model, *tok, o);
    REQUIRE(e.has_value());
    return (*e)->generate(in);
  }
};

inline reference_engine& ref() {
  static reference_engine r;
  return r;
}

using engine::testing::story_prompts;

/// A greedy request for `prompt` of at most max_tokens tokens.
inline submit_request greedy(const std::string& prompt, int64_t max_tokens) {
  submit_request r;
  r.prompt = prompt;
  r.params.max_tokens = max_tokens;
  r.params.sampling.temperature = 0.0f;
  return r;
}

/// Twelve requests: greedy and seeded, n samples, stop strings and ids, ignore_eos.
inline std::vector<engine::llm_request> mixed_requests() {
  std::vector<engine::llm_request> in;
  for (size_t i = 0; i < 12; ++i) {
    engine::llm_request r;
    r.prompt = story_prompts()[i % story_prompts().size()];
    r.params.max_tokens = 16 + int64_t(i * 5 % 30);
    if (i % 3 == 0) {
      r.params.sampling.temperature = 0.0f;
    } else {
      r.params.sampling.temperature = 0.8f;
      r.params.sampling.seed = 500 + i;
    }
    if (i % 4 == 1) r.params.n = 2;
    if (i % 5 == 2) r.params.stop = {" the", "."};
    if (i % 5 == 3) r.params.stop_token_ids = {ref().tok->encode(" the", false)->front()};
    if (i % 6 == 4) r.params.ignore_eos = true;
    in.push_back(r);
  }
  return in;
}

/// Options whose executors use failing_backend under `plan`.
inline runtime_options with_plan(runtime_options o, std::shared_ptr<failure_plan> plan) {
  o.backend_factory = [plan]() -> std::unique_ptr<kernels::backend> { return std::make_unique<failing_backend>(plan); };
  return o;
}

// Submits every request at once, then collects each stream.
inline std::vector<std::vector<collected_sample>> through_runtime(runtime& rt, const std::vector<engine::llm_request>& in) {
  std::vector<std::shared_ptr<request_stream>> streams;
  for (const auto& r : in) {
    submit_request s;
    s.prompt = r.prompt;
    s.prompt_ids = r.prompt_ids;
    s.add_special_tokens = r.add_special_tokens;
    s.params = r.params;
    auto st = rt.submit(s);
    if (!st) FAIL(st.error().message);
    streams.push_back(*st);
  }
  std::vector<std::vector<collected_sample>> out;
  for (size_t i = 0; i < in.size(); ++i) out.push_back(collect(*streams[i], in[i].params.n));
  return out;
}

/// Every sample equal to engine::llm's: ids, text, finish and stop reasons.
inline void require_equal(const std::vector<engine::llm_output>& want, const std::vector<std::vector<collected_sample>>& got) {
  REQUIRE(want.size() == got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    REQUIRE(want[i].error.empty());
    REQUIRE(want[i].samples.size() == got[i].size());
    for (size_t s = 0; s < got[i].size(); ++s) {
      INFO("request " << i << " sample " << s);
      CHECK(got[i][s].ids == want[i].samples[s].output_ids);
      CHECK(got[i][s].text == want[i].samples[s].text);
      CHECK(got[i][s].finish_reason == want[i].samples[s].finish_reason);
      CHECK(got[i][s].stop_reason == want[i].samples[s].stop_reason);
    }
  }
}

}  // namespace troupe::test
