// Element-type conversion of device buffers, and seeded random fills (dummy weights).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.hpp"

namespace troupe::kernels::cuda {

/// dst[i] = src[i] converted from src_type to dst_type (round to nearest even), n elements.
cudaError_t convert(dtype src_type, const void* src, dtype dst_type, void* dst, int64_t n,
                    cudaStream_t stream);

/// dst[i] = center + amplitude * u_i with u_i uniform in [-1, 1) from (seed, i).
cudaError_t fill_random(dtype type, void* dst, int64_t n, float center, float amplitude,
                        uint64_t seed, cudaStream_t stream);

}  // namespace troupe::kernels::cuda
