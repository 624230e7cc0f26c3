// Matrix-vector products: each warp streams one to four weight rows (or a share of them) with several
// 16-byte loads in flight.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/gemv_rows.cuh"

#include <cstdlib>
#include <type_traits>

namespace troupe::kernels::cuda {
namespace {


// Where each product's blocks start in the grid, and the arguments of the kernel.
struct gemv_launch {
  gemv_batch batch;
  int64_t block_start[gemv_batch::max_count + 1] = {};
};

// A block's warps_per_block / k_split row groups of rows_per_warp rows each; the k_split warps of a
// group stream a 1/k_split share of the row each and add up through shared memory (for products
// with few rows, so that enough warps stream at once).
template <class T, int rows_per_warp, int unroll, int warps_per_block, int k_split>
__global__ void __launch_bounds__(warps_per_block * 32)
    gemv_kernel(const T* __restrict__ x, gemv_launch l, int64_t k) {
  constexpr int groups = warps_per_block / k_split;
  __shared__ float partial[warps_per_block][rows_per_warp];
  int seg = 0;
  while (seg + 1 < l.batch.count && blockIdx.x >= l.block_start[seg + 1]) ++seg;
  const T* __restrict__ w = static_cast<const T*>(l.batch.w[seg]);
  const float* __restrict__ bias = l.batch.bias[seg];
  T* __restrict__ out = static_cast<T*>(l.batch.out[seg]);
  const int64_t n = l.batch.n[seg];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = warp / k_split, slice = warp % k_split;
  const int64_t row0 = ((int64_t{blockIdx.x} - l.block_start[seg]) * groups + group) * rows_per_warp;
  const int64_t kv = k / 8;
  const int64_t begin = kv * slice / k_split, end = kv * (slice + 1) / k_split;
  const auto* xv = reinterpret_cast<const vec8<T>*>(x);
  const vec8<T>* wv[rows_per_warp];
#pragma unroll
  for (int r = 0; r < rows_per_warp; ++r)
    wv[r] = reinterpret_cast<const vec8<T>*>(w + (row0 + r < n ? row0 + r : n - 1) * k);
  float acc[rows_per_warp];
  // No L2 prefetch before the wait: decode-1 ran 1% faster without it on an H100. The o and down
  // projections' pulls contended with the attention and the gated product running before them; for
  // q/k/v and lm_head it made no difference. (The gated product keeps its prefetch.)
  if (!gemv_rows<T, rows_per_warp, unroll, k_split, warps_per_block>(wv, xv, begin, end, row0 < n, acc, partial,
                                                                      false))
    return;
  if (lane == 0)
#pragma unroll
    for (int r = 0; r < rows_per_warp; ++r)
      if (row0 + r < n) out[row0 + r] = from_f<T>(acc[r] + (bias != nullptr ? bias[row0 + r] : 0.0f));
}

}  // namespace

bool gemv_supported(dtype type, const void* x, const void* w, int64_t k) {
  return type != dtype::f32 && k % 8 == 0 && aligned16(x) && aligned16(w);
}

namespace {

template <class T, int rows_per_warp, int unroll, int warps_per_block, int k_split>
cudaError_t launch_tiling(const void* x, const gemv_batch& batch, int64_t k, cudaStream_t stream) {
  constexpr int64_t rows_per_block = warps_per_block / k_split * rows_per_warp;
  gemv_launch l;
  l.batch = batch;
  for (int i = 0; i < batch.count; ++i)
    l.block_start[i + 1] = l.block_start[i] + (batch.n[i] + rows_per_block - 1) / rows_per_block;
  const auto blocks = static_cast<unsigned>(l.block_start[batch.count]);
  if (blocks == 0) return cudaSuccess;
  const cudaError_t e = launch(gemv_kernel<T, rows_per_warp, unroll, warps_per_block, k_split>, blocks,
                               warps_per_block * 32, 0, stream, static_cast<const T*>(x), l, k);
  return e;
}

}  // namespace

cudaError_t gemv_batched(dtype type, const void* x, const gemv_batch& batch, int64_t k, int variant, int num_sms,
                         cudaStream_t stream) {
  if (batch.count <= 0) return cudaSuccess;
  if (variant == 1) {  // automatic: split k where two rows per warp would leave too few blocks (tiling 13,
    // 16 warps a block: decode-1 189.9-190.6 tok/s on an H100 against 187.9-188.0 with tiling 7, same calls)
    int64_t rows = 0;
    for (int i = 0; i < batch.count; ++i) rows += batch.n[i];
    // TROUPE_GEMV_FEW_ROWS / TROUPE_GEMV_MANY_ROWS pick the tilings (measurements only).
    static const auto pick = [](const char* name, int fallback) {
      const char* v = std::getenv(name);
      const int n = v != nullptr ? std::atoi(v) : 0;
      return n >= 2 && n <= gemv_variants ? n : fallback;
    };
    static const int few_rows = pick("TROUPE_GEMV_FEW_ROWS", 13), many_rows = pick("TROUPE_GEMV_MANY_ROWS", 2);
    variant = rows / 16 < 3LL * num_sms ? few_rows : many_rows;
  }
  cudaError_t err = cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    if constexpr (!std::is_same_v<T, float>) {
      switch (variant) {  // rows per warp, loads in flight per row, warps per block, warps per row
        case 3: err = launch_tiling<T, 1, 8, 8, 1>(x, batch, k, stream); break;
        case 4: err = launch_tiling<T, 4, 2, 8, 1>(x, batch, k, stream); break;
        case 5: err = launch_tiling<T, 2, 8, 4, 1>(x, batch, k, stream); break;
        case 6: err = launch_tiling<T, 1, 4, 4, 1>(x, batch, k, stream); break;
        case 7: err = launch_tiling<T, 1, 4, 8, 4>(x, batch, k, stream); break;
        case 8: err = launch_tiling<T, 2, 4, 8, 2>(x, batch, k, stream); break;
        case 9: err = launch_tiling<T, 2, 4, 8, 4>(x, batch, k, stream); break;
        case 10: err = launch_tiling<T, 4, 2, 8, 2>(x, batch, k, stream); break;
        case 11: err = launch_tiling<T, 2, 8, 8, 2>(x, batch, k, stream); break;
        case 12: err = launch_tiling<T, 1, 8, 8, 2>(x, batch, k, stream); break;
        case 13: err = launch_tiling<T, 2, 4, 16, 2>(x, batch, k, stream); break;
        default: err = launch_tiling<T, 2, 4, 8, 1>(x, batch, k, stream); break;
      }
    }
  });
  return err;
}

cudaError_t gemv(dtype type, const void* x, const void* w, const float* bias, void* out, int64_t n, int64_t k,
                 int variant, int num_sms, cudaStream_t stream) {
  gemv_batch b;
  b.w[0] = w;
  b.bias[0] = bias;
  b.out[0] = out;
  b.n[0] = n;
  b.count = 1;
  return gemv_batched(type, x, b, k, variant, num_sms, stream);
}

}  // namespace troupe::kernels::cuda
