// Matrix-vector product for one row of activations (decode): out = W x (+ bias), bandwidth-bound.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.hpp"

namespace troupe::kernels::cuda {

/// True when gemv can take these operands: 2-byte type, k a multiple of 8, 16-byte aligned.
bool gemv_supported(dtype type, const void* x, const void* w, int64_t k);

/// out[j] = sum_i x[i] * w[j, i] (+ bias[j]) for j < n; x [k], w [n, k], out [n] of `type`,
/// bias float32 or null; float32 accumulation.
cudaError_t gemv(dtype type, const void* x, const void* w, const float* bias, void* out, int64_t n, int64_t k,
                 cudaStream_t stream);

}  // namespace troupe::kernels::cuda
