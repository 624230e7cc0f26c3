// SiLU-and-multiply (the SwiGLU activation), float32 math, two elements per thread step.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

#include <type_traits>

namespace troupe::kernels::cuda {
namespace {

template <class T>
__global__ void silu_and_mul_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out,
                                    int64_t n) {
  wait_for_inputs();
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float g = to_f(gate[i]);
    out[i] = from_f<T>(g / (1.0f + expf(-g)) * to_f(up[i]));
  }
}

template <class T>
__global__ void silu_and_mul_vec_kernel(const vec8<T>* __restrict__ gate, const vec8<T>* __restrict__ up,
                                        vec8<T>* __restrict__ out, int64_t nv) {
  wait_for_inputs();
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < nv; i += int64_t{gridDim.x} * blockDim.x) {
    const vec8<T> g = gate[i], u = up[i];
    vec8<T> o;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float x = to_f(g.v[e]);
      o.v[e] = from_f<T>(x / (1.0f + expf(-x)) * to_f(u.v[e]));
    }
    out[i] = o;
  }
}

}  // namespace

cudaError_t silu_and_mul(dtype type, const void* gate, const void* up, void* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  cudaError_t err = cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    if (!std::is_same_v<T, float> && n % 8 == 0 && aligned16(gate) && aligned16(up) && aligned16(out))
      err = launch(silu_and_mul_vec_kernel<T>, blocks_for(n / 8, 256, 8192), 256, 0, stream,
                 static_cast<const vec8<T>*>(gate), static_cast<const vec8<T>*>(up), static_cast<vec8<T>*>(out), n / 8);
    else
      err = launch(silu_and_mul_kernel<T>, blocks_for(n, 256, 8192), 256, 0, stream, static_cast<const T*>(gate),
                 static_cast<const T*>(up), static_cast<T*>(out), n);
  });
  return err;
}

}  // namespace troupe::kernels::cuda
