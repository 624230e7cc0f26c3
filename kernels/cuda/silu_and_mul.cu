// SiLU-and-multiply (the SwiGLU activation), float32 math, two elements per thread step.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace troupe::kernels::cuda {
namespace {

template <class T>
__global__ void silu_and_mul_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out,
                                    int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float g = to_f(gate[i]);
    out[i] = from_f<T>(g / (1.0f + expf(-g)) * to_f(up[i]));
  }
}

}  // namespace

cudaError_t silu_and_mul(dtype type, const void* gate, const void* up, void* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    silu_and_mul_kernel<T><<<blocks_for(n, 256, 8192), 256, 0, stream>>>(
        static_cast<const T*>(gate), static_cast<const T*>(up), static_cast<T*>(out), n);
  });
  return cudaGetLastError();
}

}  // namespace troupe::kernels::cuda
