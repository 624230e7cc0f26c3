// RMSNorm, alone or fused with the residual add: one block per row, float32 statistics.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/rms_norm.cuh"

namespace troupe::kernels::cuda {
namespace {

template <class T, bool add>
__global__ void rms_norm_kernel(const T* __restrict__ x, T* __restrict__ residual, const float* __restrict__ w,
                                float eps, int64_t n, T* __restrict__ out) {
  const int64_t base = blockIdx.x * n;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float v = to_f(x[base + i]);
    if constexpr (add) {
      v = round_to<T>(v + to_f(residual[base + i]));
      residual[base + i] = from_f<T>(v);
    }
    sum += v * v;
  }
  const float inv = rsqrtf(block_sum(sum) / static_cast<float>(n) + eps);
  const T* src = add ? residual : x;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    out[base + i] = from_f<T>(w[i] * round_to<T>(to_f(src[base + i]) * inv));
}

}  // namespace

cudaError_t rms_norm(dtype type, const void* x, void* residual, const float* weight, float eps, int64_t rows,
                     int64_t n, void* out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  const int threads = n >= 2048 ? 512 : n >= 512 ? 256 : 64;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    if (residual != nullptr)
      rms_norm_kernel<T, true><<<static_cast<unsigned>(rows), threads, 0, stream>>>(
          static_cast<const T*>(x), static_cast<T*>(residual), weight, eps, n, static_cast<T*>(out));
    else
      rms_norm_kernel<T, false><<<static_cast<unsigned>(rows), threads, 0, stream>>>(
          static_cast<const T*>(x), nullptr, weight, eps, n, static_cast<T*>(out));
  });
  return cudaGetLastError();
}

}  // namespace troupe::kernels::cuda
