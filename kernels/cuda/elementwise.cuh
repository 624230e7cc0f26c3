// Elementwise ops: SiLU-and-multiply, add, bias add and row gathering (one .cu each).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.hpp"

namespace troupe::kernels::cuda {

/// out[r, i] = silu(gate_up[r, i]) * gate_up[r, n + i] for rows x n outputs of `type` (each row of
/// gate_up holds 2n: the gate values, then the up values), computed in float32 and rounded once.
cudaError_t silu_and_mul(dtype type, const void* gate_up, void* out, int64_t rows, int64_t n, cudaStream_t stream);

/// out = a + b, n elements; out may alias a or b.
cudaError_t add(dtype type, const void* a, const void* b, void* out, int64_t n, cudaStream_t stream);

/// out[r, j] += bias[j] for rows x cols elements of `type`; bias is float32.
cudaError_t add_bias(dtype type, void* out, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream);

/// out[i] = x[rows[i]] for count rows of `cols` elements; rows outside [0, x_rows) give zeros.
cudaError_t gather_rows(dtype type, const void* x, int64_t x_rows, int64_t cols, const int32_t* rows, int64_t count,
                        void* out, cudaStream_t stream);

}  // namespace troupe::kernels::cuda
