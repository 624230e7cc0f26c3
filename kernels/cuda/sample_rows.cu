// Sampling rows that are not plain greedy: a float copy of each row with its adjustments, a stable
// segmented sort by decreasing logit (CUB), then one block per row for softmax with temperature,
// top-k/top-p/min-p cuts and the inverse-CDF draw, in double as the CPU reference.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include <climits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/sample.cuh"

namespace troupe::kernels::cuda {
namespace {

// -0 sorts below +0 in a radix sort, but compares equal to it (the reference orders equal logits
// by id): store zeros as +0.
__device__ __forceinline__ float plus_zero(float x) { return x == 0.0f ? 0.0f : x; }

template <class T>
__global__ void copy_rows_kernel(const T* __restrict__ logits, int64_t vocab, const int32_t* __restrict__ src,
                                 float* __restrict__ keys, int32_t* __restrict__ ids) {
  const int64_t w = blockIdx.y;
  const T* row = logits + int64_t{src[w]} * vocab;
  for (int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; j < vocab; j += int64_t{gridDim.x} * blockDim.x) {
    keys[w * vocab + j] = plus_zero(to_f(row[j]));
    ids[w * vocab + j] = int32_t(j);
  }
}

// One block per work row. Adjustments of one token must apply in order; those of different tokens
// commute: thread t applies, in list order, the ones whose token is t modulo the block size.
__global__ void adjust_kernel(int64_t vocab, const int32_t* __restrict__ src, const row_recipe* __restrict__ recipes,
                              const logit_adjustment* __restrict__ adjustments, float* __restrict__ keys) {
  const int64_t w = blockIdx.x;
  const row_recipe& r = recipes[src[w]];
  float* row = keys + w * vocab;
  for (uint32_t a = 0; a < r.num_adjustments; ++a) {
    const logit_adjustment adj = adjustments[r.first_adjustment + a];
    if (adj.token < 0 || adj.token >= vocab || adj.token % int32_t(blockDim.x) != int32_t(threadIdx.x)) continue;
    float x = row[adj.token];
    switch (adj.op) {
      case logit_adjustment::kind::add: x = __fadd_rn(x, adj.value); break;
      case logit_adjustment::kind::penalise: x = x > 0.0f ? __fdiv_rn(x, adj.value) : __fmul_rn(x, adj.value); break;
      case logit_adjustment::kind::subtract: x = __fsub_rn(x, adj.value); break;
    }
    row[adj.token] = plus_zero(x);
  }
}

constexpr int draw_threads = 256;
constexpr int draw_items = 4;
constexpr int draw_tile = draw_threads * draw_items;

// The weight of sorted candidate i before normalising: exp(logit * (1 / T) - top), rounded as the
// reference rounds it (no fused multiply-add).
__device__ __forceinline__ double weight(const float* keys, int64_t i, double inv_t, double top) {
  return exp(__dsub_rn(__dmul_rn(double(keys[i]), inv_t), top));
}

__global__ void __launch_bounds__(draw_threads)
draw_kernel(const float* __restrict__ sorted_keys, const int32_t* __restrict__ sorted_ids, int64_t vocab,
            const int32_t* __restrict__ src, const row_recipe* __restrict__ recipes, int32_t* __restrict__ tokens) {
  using reduce_t = cub::BlockReduce<double, draw_threads>;
  using scan_t = cub::BlockScan<double, draw_threads>;
  __shared__ union {
    typename reduce_t::TempStorage reduce;
    typename scan_t::TempStorage scan;
  } tmp;
  __shared__ double total;
  __shared__ int first;
  const int64_t w = blockIdx.x;
  const int32_t out_row = src[w];
  const row_recipe r = recipes[out_row];
  const float* keys = sorted_keys + w * vocab;
  const int32_t* ids = sorted_ids + w * vocab;
  int64_t keep = r.top_k > 0 ? (r.top_k < vocab ? int64_t{r.top_k} : vocab) : vocab;
  const double inv_t = 1.0 / double(r.temperature);
  const double top = __dmul_rn(double(keys[0]), inv_t);

  auto block_total = [&](double part) {  // every thread gets the sum
    const double s = reduce_t(tmp.reduce).Sum(part);
    if (threadIdx.x == 0) total = s;
    __syncthreads();
    const double t = total;
    __syncthreads();
    return t;
  };
  double part = 0.0;
  for (int64_t i = threadIdx.x; i < keep; i += draw_threads) part += weight(keys, i, inv_t, top);
  const double sum = block_total(part);
  auto prob = [&](int64_t i) { return __ddiv_rn(weight(keys, i, inv_t, top), sum); };

  // The first i < limit whose running sum of probabilities (from i = 0) satisfies reached(sum); limit if none.
  auto first_reaching = [&](int64_t limit, auto reached) -> int64_t {
    double carry = 0.0;
    for (int64_t base = 0; base < limit; base += draw_tile) {
      double v[draw_items], incl[draw_items];
#pragma unroll
      for (int e = 0; e < draw_items; ++e) {
        const int64_t i = base + threadIdx.x * draw_items + e;
        v[e] = i < limit ? prob(i) : 0.0;
      }
      double tile_sum;
      scan_t(tmp.scan).InclusiveSum(v, incl, tile_sum);
      if (threadIdx.x == 0) first = INT_MAX;
      __syncthreads();
#pragma unroll
      for (int e = 0; e < draw_items; ++e) {
        const int64_t i = base + threadIdx.x * draw_items + e;
        if (i < limit && reached(__dadd_rn(carry, incl[e]))) atomicMin(&first, int(threadIdx.x * draw_items + e));
      }
      __syncthreads();
      const int f = first;
      __syncthreads();
      if (f != INT_MAX) return base + f;
      carry = __dadd_rn(carry, tile_sum);
    }
    return limit;
  };

  if (r.top_p < 1.0f) {  // the smallest prefix whose mass reaches top_p
    const double p = double(r.top_p);
    const int64_t i = first_reaching(keep, [p](double mass) { return mass >= p; });
    keep = i < keep ? i + 1 : keep;
  }
  if (r.min_p > 0.0f && keep > 1) {  // the first candidate below min_p x the top probability ends the set
    const double floor = __dmul_rn(prob(0), double(r.min_p));
    if (threadIdx.x == 0) first = INT_MAX;
    __syncthreads();
    for (int64_t base = 1; base < keep; base += draw_threads) {
      const int64_t i = base + threadIdx.x;
      if (i < keep && prob(i) < floor) atomicMin(&first, int(i - base));
      __syncthreads();
      const int f = first;
      __syncthreads();
      if (f != INT_MAX) {
        keep = base + f;
        break;
      }
    }
  }
  part = 0.0;
  for (int64_t i = threadIdx.x; i < keep; i += draw_threads) part += prob(i);
  const double kept = block_total(part);
  const double u = __dmul_rn(r.uniform, kept);
  const int64_t i = first_reaching(keep, [u](double cdf) { return u < cdf; });
  if (threadIdx.x == 0) tokens[out_row] = ids[i < keep ? i : keep - 1];
}

}  // namespace

cudaError_t prepare_work_rows(dtype type, const void* logits, int64_t vocab, const int32_t* src, int64_t count,
                              const row_recipe* recipes, const logit_adjustment* adjustments, float* keys,
                              int32_t* ids, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  const dim3 grid(blocks_for(vocab, 256, 64), static_cast<unsigned>(count));
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    copy_rows_kernel<T><<<grid, 256, 0, stream>>>(static_cast<const T*>(logits), vocab, src, keys, ids);
  });
  adjust_kernel<<<static_cast<unsigned>(count), 256, 0, stream>>>(vocab, src, recipes, adjustments, keys);
  return cudaGetLastError();
}

cudaError_t sort_work_rows(void* temp, size_t* temp_bytes, float* keys[2], int32_t* ids[2], int64_t vocab,
                           int64_t count, const int32_t* offsets, int* current, cudaStream_t stream) {
  cub::DoubleBuffer<float> k(keys[0], keys[1]);
  cub::DoubleBuffer<int32_t> v(ids[0], ids[1]);
  const cudaError_t e = cub::DeviceSegmentedRadixSort::SortPairsDescending(
      temp, *temp_bytes, k, v, static_cast<int>(count * vocab), static_cast<int>(count), offsets, offsets + 1, 0,
      int(sizeof(float) * 8), stream);
  if (current) *current = k.selector;
  if (temp != nullptr && k.selector != v.selector) return cudaErrorUnknown;  // CUB flips both together
  return e;
}

cudaError_t draw_rows(const float* keys, const int32_t* ids, int64_t vocab, const int32_t* src, int64_t count,
                      const row_recipe* recipes, int32_t* tokens, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  draw_kernel<<<static_cast<unsigned>(count), draw_threads, 0, stream>>>(keys, ids, vocab, src, recipes, tokens);
  return cudaGetLastError();
}

}  // namespace troupe::kernels::cuda
