// The gate and up projections of a decode step with the SwiGLU activation in the epilogue: each warp
// streams the same rows of both matrices, so x is read once for both and silu(gate) * up is written
// without a separate kernel. Values are rounded as the unfused path rounds them (gate and up to the
// compute type first), so both paths give the same result.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/gemv_rows.cuh"

#include <type_traits>

namespace troupe::kernels::cuda {
namespace {

// A block's warps_per_block / k_split row groups of rows_per_warp rows of each matrix; the k_split
// warps of a group stream a 1/k_split share of the rows and add up through shared memory.
template <class T, int rows_per_warp, int unroll, int warps_per_block, int k_split>
__global__ void __launch_bounds__(warps_per_block * 32)
    gated_kernel(const T* __restrict__ x, const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out,
                 int64_t n, int64_t k) {
  constexpr int groups = warps_per_block / k_split, rows = 2 * rows_per_warp;
  __shared__ float partial[warps_per_block][rows];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = warp / k_split, slice = warp % k_split;
  const int64_t row0 = (int64_t{blockIdx.x} * groups + group) * rows_per_warp;
  const int64_t kv = k / 8;
  const int64_t begin = kv * slice / k_split, end = kv * (slice + 1) / k_split;
  const auto* xv = reinterpret_cast<const vec8<T>*>(x);
  const vec8<T>* wv[rows];  // rows_per_warp rows of gate, then the same rows of up
#pragma unroll
  for (int r = 0; r < rows_per_warp; ++r) {
    const int64_t row = row0 + r < n ? row0 + r : n - 1;
    wv[r] = reinterpret_cast<const vec8<T>*>(gate + row * k);
    wv[rows_per_warp + r] = reinterpret_cast<const vec8<T>*>(up + row * k);
  }
  float acc[rows];
  // Its weights start into L2 while the norm before it runs (decode-1 0.4-0.8% slower without).
  if (!gemv_rows<T, rows, unroll, k_split, warps_per_block>(wv, xv, begin, end, row0 < n, acc, partial, true)) return;
  if (lane == 0)
#pragma unroll
    for (int r = 0; r < rows_per_warp; ++r)
      if (row0 + r < n) {
        const float g = round_to<T>(acc[r]), u = round_to<T>(acc[rows_per_warp + r]);
        out[row0 + r] = from_f<T>(g / (1.0f + expf(-g)) * u);
      }
}

}  // namespace

cudaError_t gemv_gated(dtype type, const void* x, const void* gate, const void* up, void* out, int64_t n, int64_t k,
                       cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  constexpr int rows_per_warp = 1, unroll = 4, warps = 8, k_split = 2;
  constexpr int64_t rows_per_block = warps / k_split * rows_per_warp;
  const auto blocks = static_cast<unsigned>((n + rows_per_block - 1) / rows_per_block);
  cudaError_t err = cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    if constexpr (!std::is_same_v<T, float>)
      err = launch(gated_kernel<T, rows_per_warp, unroll, warps, k_split>, blocks, warps * 32, 0, stream,
                   static_cast<const T*>(x), static_cast<const T*>(gate), static_cast<const T*>(up), static_cast<T*>(out),
                   n, k);
  });
  return err;
}

}  // namespace troupe::kernels::cuda
