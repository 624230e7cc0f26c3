// Greedy sampling: the argmax of each row, one block per row, 16-byte loads of the model's own
// bf16/f16 values (compared as floats: exact), lowest index among equals.
#include <climits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/sample.cuh"

namespace troupe::kernels::cuda {
namespace {

constexpr int argmax_threads = 1024;

__device__ __forceinline__ void take_better(float& bv, int32_t& bi, float v, int32_t i) {
  if (v > bv || (v == bv && i < bi)) {
    bv = v;
    bi = i;
  }
}

template <class T>
__global__ void __launch_bounds__(argmax_threads)
argmax_kernel(const T* __restrict__ x, int64_t row_stride, int64_t vocab, const int32_t* __restrict__ src,
              const int32_t* __restrict__ dst, int32_t* __restrict__ tokens, bool vectors) {
  const int64_t b = blockIdx.x;
  const T* row = x + (src ? src[b] : b) * row_stride;
  float bv = -INFINITY;
  int32_t bi = INT_MAX;
  if constexpr (sizeof(T) == 2) {
    if (vectors) {  // vocab % 8 == 0 and 16-byte aligned rows
      const auto* rv = reinterpret_cast<const vec8<T>*>(row);
      const int64_t nv = vocab / 8;
      int64_t i = threadIdx.x;
      for (; i + 3 * argmax_threads < nv; i += 4 * argmax_threads) {  // four loads in flight
        vec8<T> a[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) a[u] = rv[i + u * argmax_threads];
#pragma unroll
        for (int u = 0; u < 4; ++u)
#pragma unroll
          for (int e = 0; e < 8; ++e) take_better(bv, bi, to_f(a[u].v[e]), int32_t((i + u * argmax_threads) * 8 + e));
      }
      for (; i < nv; i += argmax_threads) {
        vec8<T> a = rv[i];
#pragma unroll
        for (int e = 0; e < 8; ++e) take_better(bv, bi, to_f(a.v[e]), int32_t(i * 8 + e));
      }
      vocab = 0;  // done
    }
  }
  for (int64_t i = threadIdx.x; i < vocab; i += argmax_threads) take_better(bv, bi, to_f(row[i]), int32_t(i));
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    take_better(bv, bi, ov, oi);
  }
  __shared__ float vals[32];
  __shared__ int32_t idx[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    vals[warp] = bv;
    idx[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    bv = vals[lane];
    bi = idx[lane];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
      take_better(bv, bi, ov, oi);
    }
    if (lane == 0) tokens[dst ? dst[b] : b] = bi == INT_MAX ? 0 : bi;
  }
}

}  // namespace

cudaError_t argmax_rows(dtype type, const void* x, int64_t row_stride, int64_t vocab, const int32_t* src,
                        const int32_t* dst, int64_t count, int32_t* tokens, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  const bool vectors = vocab % 8 == 0 && row_stride % 8 == 0 && aligned16(x);
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    argmax_kernel<T><<<static_cast<unsigned>(count), argmax_threads, 0, stream>>>(
        static_cast<const T*>(x), row_stride, vocab, src, dst, tokens, vectors);
  });
  return cudaGetLastError();
}

}  // namespace troupe::kernels::cuda
