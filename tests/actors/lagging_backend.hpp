// A CPU backend whose sampled tokens reach the host only a while after their step was launched, as
// a GPU's do: the executor actor then has a step launched and unfinished, and may launch the next
// one before it (tests/actors/test_runtime_overlap.cpp). It can also throw from a forward pass (a
// device error, as failing_backend.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>

#include "kernels/backend.hpp"

namespace troupe::test {

/// What the lagging backends of one test share: the lag, a failure, and what they saw.
struct lag_plan {
  std::chrono::microseconds lag{2000};  ///< a sample's results are ready this long after it began
  int32_t fail_at = 0;                  ///< >0: the first backend made throws in this forward pass
  std::atomic<int32_t> instances{0};    ///< backends made
  std::atomic<int32_t> begun{0};        ///< samples begun (steps that sample)
  std::atomic<int32_t> overlapped{0};   ///< samples begun while the one before was not ended
  std::atomic<int32_t> not_ready{0};    ///< sample_ready answers "not yet"
};

/// Forwards every op to a CPU backend; sample_begin / sample_ready / sample_end keep the base
/// class's results (computed at once, and fed to the next step's ids from host memory) but report
/// them ready, and hand them out, only `lag` after they began or after the samples begun before
/// them were ready, whichever is later (a device runs its steps one after the other).
class lagging_backend final : public kernels::backend {
 public:
  using clock = std::chrono::steady_clock;

  explicit lagging_backend(std::shared_ptr<lag_plan> plan)
      : inner_(kernels::make_cpu_backend(1)), plan_(std::move(plan)), fails_(plan_->instances.fetch_add(1) == 0) {}
  std::string_view name() const override { return "lagging-cpu"; }
  kernels::dtype compute_type() const override { return inner_->compute_type(); }
  kernels::tensor alloc(kernels::shape d) override { return inner_->alloc(d); }
  kernels::tensor alloc_zeroed(kernels::shape d) override { return inner_->alloc_zeroed(d); }
  kernels::tensor upload_weight(kernels::dtype t, const void* h, kernels::shape d) override {
    return inner_->upload_weight(t, h, d);
  }
  kernels::tensor alloc_weight(kernels::shape d) override { return inner_->alloc_weight(d); }
  void fill_weight(kernels::dtype t, const void* h, kernels::tensor& dst) override { inner_->fill_weight(t, h, dst); }
  kernels::index_tensor upload_indices(std::span<const int32_t> h, kernels::shape d) override {
    return inner_->upload_indices(h, d);
  }
  void copy_to_device(std::span<const float> h, kernels::tensor& dst) override { inner_->copy_to_device(h, dst); }
  void copy_to_host(const kernels::tensor& s, std::span<float> h) override { inner_->copy_to_host(s, h); }
  void synchronize() override {}
  void embedding(const kernels::tensor& t, const kernels::index_tensor& i, kernels::tensor& o) override {
    inner_->embedding(t, i, o);
  }
  void rms_norm(const kernels::tensor& x, const kernels::tensor& w, float e, kernels::tensor& o) override {
    inner_->rms_norm(x, w, e, o);
  }
  void add_rms_norm(const kernels::tensor& x, kernels::tensor& r, const kernels::tensor& w, float e,
                    kernels::tensor& o) override {
    inner_->add_rms_norm(x, r, w, e, o);
  }
  void matmul(const kernels::tensor& x, const kernels::tensor& w, const kernels::tensor* b,
              kernels::tensor& o) override {
    inner_->matmul(x, w, b, o);
  }
  void rope_write_kv(const kernels::tensor& qkv, kernels::tensor& q, const kernels::index_tensor& p,
                     const kernels::tensor& f, const kernels::index_tensor& s, kernels::tensor& kc,
                     kernels::tensor& vc) override {
    inner_->rope_write_kv(qkv, q, p, f, s, kc, vc);
  }
  void paged_attention(const kernels::tensor& q, const kernels::tensor& k, const kernels::tensor& v,
                       const kernels::attention_batch& b, kernels::tensor& o) override {
    inner_->paged_attention(q, k, v, b, o);
  }
  void silu_and_mul(const kernels::tensor& gu, kernels::tensor& o) override { inner_->silu_and_mul(gu, o); }
  void add(const kernels::tensor& a, const kernels::tensor& b, kernels::tensor& o) override { inner_->add(a, b, o); }
  void gather_rows(const kernels::tensor& x, const kernels::index_tensor& r, kernels::tensor& o) override {
    if (fails_ && ++forwards_ == plan_->fail_at) throw std::runtime_error("injected device failure");  // once a pass
    inner_->gather_rows(x, r, o);
  }
  void sample(const kernels::tensor& logits, const kernels::sampling_batch& b, kernels::sample_result& out) override {
    inner_->sample(logits, b, out);
  }

  int sample_begin(const kernels::tensor& logits, const kernels::sampling_batch& b) override {
    ++plan_->begun;
    if (open_ > 0) ++plan_->overlapped;
    ++open_;
    const int ticket = backend::sample_begin(logits, b);
    ready_at_[ticket] = std::max(clock::now(), last_ready_) + plan_->lag;  // the device runs one at a time
    last_ready_ = ready_at_[ticket];
    return ticket;
  }
  bool sample_ready(int ticket) override {
    const bool ready = clock::now() >= ready_at_[ticket];
    if (!ready) ++plan_->not_ready;
    return ready;
  }
  void sample_end(int ticket, kernels::sample_result& out) override {
    std::this_thread::sleep_until(ready_at_[ticket]);
    --open_;
    backend::sample_end(ticket, out);
  }

 private:
  std::unique_ptr<kernels::backend> inner_;
  std::shared_ptr<lag_plan> plan_;
  bool fails_;
  int32_t forwards_ = 0;
  int32_t open_ = 0;
  clock::time_point ready_at_[2], last_ready_;
};

}  // namespace troupe::test
