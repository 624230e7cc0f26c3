// The q/k/v product of a decode step with one row, fused with RoPE and the paged KV write.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/rope_kv.cuh"
#include "kernels/dtype.hpp"

namespace troupe::kernels::cuda {

/// w [(heads + 2 kv_heads) * head_dim, k] stacks the q, k and v projections; x [k] is one token.
/// Each warp computes the two rows of a rotated pair (i, i + head_dim / 2) of one head, rounds them
/// to `type` (after the float32 bias, if any) as the unfused product does, then rotates q and k
/// exactly as rope_write_kv does and writes q to r.q and k, v to the cache at r.slots[0]: the same
/// values as gemv followed by rope_write_kv. r.qkv is not used. Same operand rules as gemv.
cudaError_t gemv_rope(dtype type, const void* x, const void* w, const float* bias, int64_t k, const rope_kv_args& r,
                      cudaStream_t stream);

}  // namespace troupe::kernels::cuda
