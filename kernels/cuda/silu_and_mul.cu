// SiLU-and-multiply (the SwiGLU activation) over rows of [gate | up], float32 math.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"

#include <type_traits>

namespace troupe::kernels::cuda {
namespace {

__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

template <class T>
__global__ void silu_and_mul_kernel(const T* __restrict__ gate_up, T* __restrict__ out, int64_t rows, int64_t n) {
  wait_for_inputs();
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows * n; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / n, c = i % n;
    const T* row = gate_up + r * 2 * n;
    out[i] = from_f<T>(silu_times(to_f(row[c]), to_f(row[n + c])));
  }
}

// The same eight elements at a time (n a multiple of 8, 16-byte aligned buffers); nv = n / 8.
template <class T>
__global__ void silu_and_mul_vec_kernel(const vec8<T>* __restrict__ gate_up, vec8<T>* __restrict__ out, int64_t rows,
                                        int64_t nv) {
  wait_for_inputs();
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows * nv; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / nv, c = i % nv;
    const vec8<T> g = gate_up[r * 2 * nv + c], u = gate_up[r * 2 * nv + nv + c];
    vec8<T> o;
#pragma unroll
    for (int e = 0; e < 8; ++e) o.v[e] = from_f<T>(silu_times(to_f(g.v[e]), to_f(u.v[e])));
    out[i] = o;
  }
}

}  // namespace

cudaError_t silu_and_mul(dtype type, const void* gate_up, void* out, int64_t rows, int64_t n, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return cudaSuccess;
  cudaError_t err = cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    if (!std::is_same_v<T, float> && n % 8 == 0 && aligned16(gate_up) && aligned16(out))
      err = launch(silu_and_mul_vec_kernel<T>, blocks_for(rows * n / 8, 256, 8192), 256, 0, stream,
                   static_cast<const vec8<T>*>(gate_up), static_cast<vec8<T>*>(out), rows, n / 8);
    else
      err = launch(silu_and_mul_kernel<T>, blocks_for(rows * n, 256, 8192), 256, 0, stream,
                   static_cast<const T*>(gate_up), static_cast<T*>(out), rows, n);
  });
  return err;
}

}  // namespace troupe::kernels::cuda
