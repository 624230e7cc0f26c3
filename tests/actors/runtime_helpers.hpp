// Shared by the actor-layer tests: starting a runtime on the bundled model, collecting a stream,
// running the same requests through engine::llm, and a backend that fails on command.
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

/// The bundled model and tokenizer on a CPU backend, for engine::llm references.
struct reference_engine {
  kernels::cpu::cpu_backend backend{1};
  std::unique_ptr<engine::llama_model> model;
  std::unique_ptr<engine::tokenizer> tok;
  reference_engine() {
    auto m = engine::llama_model::load(TROUPE_DEFAULT_MODEL, backend);
    REQUIRE(m.has_value());
    model = std::move(*m);
    auto t = engine::tokenizer::load(TROUPE_DEFAULT_MODEL);
    REQUIRE(t.has_value());
    tok = std::make_unique<engine::tokenizer>(std::move(*t));
  }
  std::vector<engine::llm_output> run(const std::vector<engine::llm_request>& in, const engine::llm_options& o) {
    auto e = engine::llm::create(*model, *tok, o);
    REQUIRE(e.has_value());
    return (*e)->generate(in);
  }
};

/// A greedy request for `prompt` of at most max_tokens tokens.
inline submit_request greedy(const std::string& prompt, int64_t max_tokens) {
  submit_request r;
  r.prompt = prompt;
  r.params.max_tokens = max_tokens;
  r.params.sampling.temperature = 0.0f;
  return r;
}

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

/// Tells failing backends when to fail: the first `failing_instances` backends made throw on
/// their `fail_after_steps`-th forward pass (gather_rows runs once per forward).
struct failure_plan {
  std::atomic<int32_t> instances{0};
  int32_t failing_instances = 1;
  int32_t fail_after_steps = 3;
  int32_t delay_ms = 0;  ///< every forward pass of every instance sleeps this long (a slow device)
};


/// The CPU backend, except that it throws from a forward pass when its plan says so (a device
/// error that ends the executor actor).
class failing_backend final : public kernels::backend {
 public:
  failing_backend(std::shared_ptr<failure_plan> plan)
      : inner_(1), plan_(std::move(plan)), fails_(plan_->instances.fetch_add(1) < plan_->failing_instances) {}
  std::string_view name() const override { return "failing-cpu"; }
  kernels::dtype compute_type() const override { return inner_.compute_type(); }
  kernels::tensor alloc(kernels::shape d) override { return inner_.alloc(d); }
  kernels::tensor alloc_zeroed(kernels::shape d) override { return inner_.alloc_zeroed(d); }
  kernels::tensor upload_weight(kernels::dtype t, const void* h, kernels::shape d) override {
    return inner_.upload_weight(t, h, d);
  }
  kernels::index_tensor upload_indices(std::span<const int32_t> h, kernels::shape d) override {
    return inner_.upload_indices(h, d);
  }
  void copy_to_device(std::span<const float> h, kernels::tensor& dst) override { inner_.copy_to_device(h, dst); }
  void copy_to_host(const kernels::tensor& s, std::span<float> h) override { inner_.copy_to_host(s, h); }
  void synchronize() override {}
  void embedding(const kernels::tensor& t, const kernels::index_tensor& i, kernels::tensor& o) override {
    inner_.embedding(t, i, o);
  }
  void rms_norm(const kernels::tensor& x, const kernels::tensor& w, float e, kernels::tensor& o) override {
    inner_.rms_norm(x, w, e, o);
  }
  void add_rms_norm(const kernels::tensor& x, kernels::tensor& r, const kernels::tensor& w, float e,
                    kernels::tensor& o) override {
    inner_.add_rms_norm(x, r, w, e, o);
  }
  void matmul(const kernels::tensor& x, const kernels::tensor& w, const kernels::tensor* b,
              kernels::tensor& o) override {
    inner_.matmul(x, w, b, o);
  }
  void rope_write_kv(kernels::tensor& q, kernels::tensor& k, const kernels::tensor& v,
                     const kernels::index_tensor& p, const kernels::tensor& f, const kernels::index_tensor& s,
                     kernels::tensor& kc, kernels::tensor& vc) override {
    inner_.rope_write_kv(q, k, v, p, f, s, kc, vc);
  }
  void paged_attention(const kernels::tensor& q, const kernels::tensor& k, const kernels::tensor& v,
                       const kernels::attention_batch& b, kernels::tensor& o) override {
    inner_.paged_attention(q, k, v, b, o);
  }
  void silu_and_mul(const kernels::tensor& g, const kernels::tensor& u, kernels::tensor& o) override {
    inner_.silu_and_mul(g, u, o);
  }
  void add(const kernels::tensor& a, const kernels::tensor& b, kernels::tensor& o) override { inner_.add(a, b, o); }
  void gather_rows(const kernels::tensor& x, const kernels::index_tensor& r, kernels::tensor& o) override {
    if (plan_->delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(plan_->delay_ms));
    if (fails_ && ++forwards_ >= plan_->fail_after_steps) throw std::runtime_error("injected device failure");
    inner_.gather_rows(x, r, o);
  }

 private:
  kernels::cpu::cpu_backend inner_;
  std::shared_ptr<failure_plan> plan_;
  bool fails_;
  int32_t forwards_ = 0;
};

/// Options whose executors use failing_backend under `plan`.
inline runtime_options with_plan(runtime_options o, std::shared_ptr<failure_plan> plan) {
  o.backend_factory = [plan]() -> std::unique_ptr<kernels::backend> { return std::make_unique<failing_backend>(plan); };
  return o;
}

}  // namespace troupe::test
