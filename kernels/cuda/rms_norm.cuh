// RMSNorm, alone or fused with the residual add that precedes it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.hpp"

namespace troupe::kernels::cuda {

/// Per row of n elements: with residual null, out = rms_norm(x) * weight; otherwise first
/// residual = residual + x (rounded to `type`, as a framework adding two tensors would), then
/// out = rms_norm(residual) * weight. The mean of squares and the scaling are float32; the
/// normalised value is rounded to `type` before the weight multiplies it (as Hugging Face does).
/// x, residual and out are of `type`; weight is float32.
cudaError_t rms_norm(dtype type, const void* x, void* residual, const float* weight, float eps, int64_t rows,
                     int64_t n, void* out, cudaStream_t stream);

}  // namespace troupe::kernels::cuda
