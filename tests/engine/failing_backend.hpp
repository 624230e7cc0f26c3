// A CPU backend that throws from a forward pass on command (a device error), or slows every pass
// down: shared by the engine tests and the actor tests (tests/actors/runtime_helpers.hpp).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "kernels/cpu/cpu_backend.hpp"

namespace troupe::test {

/// Tells failing backends when to fail: the first `failing_instances` backends made throw on
/// their `fail_after_steps`-th forward pass (gather_rows runs once per forward).
struct failure_plan {
  std::atomic<int32_t> instances{0};
  int32_t failing_instances = 1;
  int32_t fail_after_steps = 3;
  int32_t delay_ms = 0;  ///< every forward pass of every instance sleeps this long (a slow device)
  /// Memory the backends report as a GPU would (free, total); total 0: they report none, as the CPU.
  size_t free_bytes = 0, total_bytes = 0;
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
  kernels::tensor alloc_weight(kernels::shape d) override { return inner_.alloc_weight(d); }
  void fill_weight(kernels::dtype t, const void* h, kernels::tensor& dst) override { inner_.fill_weight(t, h, dst); }
  kernels::index_tensor upload_indices(std::span<const int32_t> h, kernels::shape d) override {
    return inner_.upload_indices(h, d);
  }
  void copy_to_device(std::span<const float> h, kernels::tensor& dst) override { inner_.copy_to_device(h, dst); }
  void copy_to_host(const kernels::tensor& s, std::span<float> h) override { inner_.copy_to_host(s, h); }
  void synchronize() override {}
  bool memory_info(size_t& free_bytes, size_t& total_bytes) override {
    if (plan_->total_bytes == 0) return false;
    free_bytes = plan_->free_bytes;
    total_bytes = plan_->total_bytes;
    return true;
  }
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
  void rope_write_kv(const kernels::tensor& qkv, kernels::tensor& q, const kernels::index_tensor& p,
                     const kernels::tensor& f, const kernels::index_tensor& s, kernels::tensor& kc,
                     kernels::tensor& vc) override {
    inner_.rope_write_kv(qkv, q, p, f, s, kc, vc);
  }
  void paged_attention(const kernels::tensor& q, const kernels::tensor& k, const kernels::tensor& v,
                       const kernels::attention_batch& b, kernels::tensor& o) override {
    inner_.paged_attention(q, k, v, b, o);
  }
  void silu_and_mul(const kernels::tensor& gu, kernels::tensor& o) override { inner_.silu_and_mul(gu, o); }
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

}  // namespace troupe::test
