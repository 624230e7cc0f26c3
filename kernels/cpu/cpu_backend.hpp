// The float32 CPU reference backend: clear loops, OpenBLAS for the matrix products.
#pragma once

#include "kernels/backend.hpp"

namespace troupe::kernels::cpu {

/// Every tensor is float32 in host memory; F16/BF16 weights are converted once at upload and
/// aligned F32 weights are used in place. `threads` (0: every core) bounds both the backend's own
/// loops and OpenBLAS, whose thread count is process-wide: the last backend made sets it.
class cpu_backend final : public backend {
 public:
  explicit cpu_backend(int threads);

  std::string_view name() const override { return "cpu"; }
  dtype compute_type() const override { return dtype::f32; }
  int threads() const { return threads_; }

  tensor alloc(shape dims) override;
  tensor alloc_zeroed(shape dims) override;
  tensor upload_weight(dtype type, const void* host, shape dims) override;
  tensor alloc_weight(shape dims) override;
  void fill_weight(dtype type, const void* host, tensor& dst) override;
  index_tensor upload_indices(std::span<const int32_t> host, shape dims) override;
  void copy_to_device(std::span<const float> host, tensor& dst) override;
  void copy_to_host(const tensor& src, std::span<float> host) override;
  void synchronize() override {}

  void embedding(const tensor& table, const index_tensor& ids, tensor& out) override;
  void rms_norm(const tensor& x, const tensor& weight, float eps, tensor& out) override;
  void add_rms_norm(const tensor& x, tensor& residual, const tensor& weight, float eps,
                    tensor& out) override;
  void matmul(const tensor& x, const tensor& weight, const tensor* bias, tensor& out) override;
  void rope_write_kv(const tensor& qkv, tensor& q, const index_tensor& positions, const tensor& inv_freq,
                     const index_tensor& slot_mapping, tensor& k_cache, tensor& v_cache) override;
  void paged_attention(const tensor& q, const tensor& k_cache, const tensor& v_cache,
                       const attention_batch& batch, tensor& out) override;
  void silu_and_mul(const tensor& gate_up, tensor& out) override;
  void add(const tensor& a, const tensor& b, tensor& out) override;
  void gather_rows(const tensor& x, const index_tensor& rows, tensor& out) override;
  /// The reference (sampling_reference.hpp) on the logits in place, rows split over the threads.
  void sample(const tensor& logits, const sampling_batch& batch, sample_result& out) override;

 private:
  int threads_;
};

}  // namespace troupe::kernels::cpu
