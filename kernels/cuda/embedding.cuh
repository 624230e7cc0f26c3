// Embedding lookup: out[t] = table[ids[t]].
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.hpp"

namespace troupe::kernels::cuda {

/// table [vocab, hidden] and out [tokens, hidden] of element type `type`; an id outside the
/// vocabulary gives a zero row (the model checks ids on the host before).
cudaError_t embedding(dtype type, const void* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                      int64_t tokens, void* out, cudaStream_t stream);

}  // namespace troupe::kernels::cuda
