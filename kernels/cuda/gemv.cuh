// Matrix-vector product for one row of activations (decode): out = W x (+ bias), bandwidth-bound.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.hpp"

namespace troupe::kernels::cuda {

/// True when gemv can take these operands: 2-byte type, k a multiple of 8, 16-byte aligned.
bool gemv_supported(dtype type, const void* x, const void* w, int64_t k);

/// out[j] = sum_i x[i] * w[j, i] (+ bias[j]) for j < n; x [k], w [n, k], out [n] of `type`,
/// bias float32 or null; float32 accumulation. variant picks the tiling (1: automatic from the row
/// count and num_sms, 2 to gemv_variants: fixed; see gemv.cu).
cudaError_t gemv(dtype type, const void* x, const void* w, const float* bias, void* out, int64_t n, int64_t k,
                 int variant, int num_sms, cudaStream_t stream);

/// Up to four products of the same x in one launch (the q, k, v or gate, up projections of decode).
struct gemv_batch {
  static constexpr int max_count = 4;
  const void* w[max_count] = {};
  const float* bias[max_count] = {};
  void* out[max_count] = {};
  int64_t n[max_count] = {};
  int count = 0;
};

/// out_i = w_i x (+ bias_i) for every product of the batch, each w_i [n_i, k].
cudaError_t gemv_batched(dtype type, const void* x, const gemv_batch& batch, int64_t k, int variant, int num_sms,
                         cudaStream_t stream);

/// out = silu(gate x) * (up x) for one row of activations: gate, up [n, k], out [n]; the products
/// are rounded to `type` before the activation, as the unfused ops do. Same operand rules as gemv.
cudaError_t gemv_gated(dtype type, const void* x, const void* gate, const void* up, void* out, int64_t n, int64_t k,
                       cudaStream_t stream);

/// Number of gemv variants.
constexpr int gemv_variants = 13;

}  // namespace troupe::kernels::cuda
