// The sample op's tokens into the next step's id input, on the device (cuda_backend::feed_sampled).
#include "kernels/cuda/sample.cuh"

namespace troupe::kernels::cuda {
namespace {

__global__ void feed_kernel(const int32_t* __restrict__ tokens, feed_args pairs, int count, int32_t* __restrict__ ids) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) ids[pairs.at[i]] = tokens[pairs.rows[i]];
}

}  // namespace

cudaError_t feed_tokens(const int32_t* tokens, const feed_args& pairs, int count, int32_t* ids, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  feed_kernel<<<1, feed_pairs, 0, stream>>>(tokens, pairs, count, ids);
  return cudaGetLastError();
}

}  // namespace troupe::kernels::cuda
