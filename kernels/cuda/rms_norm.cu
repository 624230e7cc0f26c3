// RMSNorm, alone or fused with the residual add: one block per row, float32 statistics.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/rms_norm.cuh"

namespace troupe::kernels::cuda {
namespace {

template <class T, bool add>
__global__ void rms_norm_kernel(const T* __restrict__ x, T* __restrict__ residual, const float* __restrict__ w,
                                float eps, int64_t n, T* __restrict__ out) {
  wait_for_inputs();
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

// The same with 16-byte accesses (n a multiple of 8, 16-byte aligned rows), for the common sizes.
template <class T, bool add>
__global__ void rms_norm_vec_kernel(const T* __restrict__ x, T* __restrict__ residual, const float* __restrict__ w,
                                    float eps, int64_t n, T* __restrict__ out) {
  wait_for_inputs();
  const int64_t base = blockIdx.x * n;
  const int64_t nv = n / 8;
  const auto* xv = reinterpret_cast<const vec8<T>*>(x + base);
  auto* rv = reinterpret_cast<vec8<T>*>((add ? residual : nullptr) + base);
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
    vec8<T> a = xv[i];
    if constexpr (add) {
      vec8<T> r = rv[i];
#pragma unroll
      for (int e = 0; e < 8; ++e) a.v[e] = from_f<T>(to_f(a.v[e]) + to_f(r.v[e]));
      rv[i] = a;
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) sum += to_f(a.v[e]) * to_f(a.v[e]);
  }
  const float inv = rsqrtf(block_sum(sum) / static_cast<float>(n) + eps);
  const auto* src = add ? reinterpret_cast<const vec8<T>*>(rv) : xv;
  auto* ov = reinterpret_cast<vec8<T>*>(out + base);
  for (int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
    const vec8<T> a = src[i];
    vec8<T> y;
#pragma unroll
    for (int e = 0; e < 8; ++e) y.v[e] = from_f<T>(w[i * 8 + e] * round_to<T>(to_f(a.v[e]) * inv));
    ov[i] = y;
  }
}

}  // namespace

cudaError_t rms_norm(dtype type, const void* x, void* residual, const float* weight, float eps, int64_t rows,
                     int64_t n, void* out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  const bool vectorised = type != dtype::f32 && n % 8 == 0 && aligned16(x) && aligned16(out) &&
                          (residual == nullptr || aligned16(residual));
  const int64_t per_thread = vectorised ? 8 : 1;
  const int64_t want = (n / per_thread + 31) / 32 * 32;
  const int threads = static_cast<int>(want > 1024 ? 1024 : want < 32 ? 32 : want);
  cudaError_t err = cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    const auto rows_u = static_cast<unsigned>(rows);
    const auto* xs = static_cast<const T*>(x);
    auto* rs = static_cast<T*>(residual);
    auto* os = static_cast<T*>(out);
    if (vectorised)
      err = residual != nullptr ? launch(rms_norm_vec_kernel<T, true>, rows_u, threads, 0, stream, xs, rs, weight, eps, n, os)
                              : launch(rms_norm_vec_kernel<T, false>, rows_u, threads, 0, stream, xs, rs, weight, eps, n, os);
    else
      err = residual != nullptr ? launch(rms_norm_kernel<T, true>, rows_u, threads, 0, stream, xs, rs, weight, eps, n, os)
                              : launch(rms_norm_kernel<T, false>, rows_u, threads, 0, stream, xs, rs, weight, eps, n, os);
  });
  return err;
}

}  // namespace troupe::kernels::cuda
