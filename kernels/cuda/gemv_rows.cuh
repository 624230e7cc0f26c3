// The loop both decode gemv kernels share (gemv.cu, gemv_gated.cu): a warp's weight rows against x.
#pragma once

#include "kernels/cuda/cuda_common.cuh"

namespace troupe::kernels::cuda {

/// This warp's `rows` weight rows (wv; its share [begin, end) of each row's 16-byte chunks) against
/// x, `unroll` loads per row in flight. With `prefetch`, pulls the first pass into L2 before it
/// waits for the kernels before (x is theirs); then streams, sums over the warp and, with k_split > 1,
/// over the k_split warps of its group through `partial`. Returns true on the warps whose acc is
/// final (the first of each group; every warp when k_split is 1), where lane 0 holds the sums.
/// `active`: the warp has rows to do.
template <class T, int rows, int unroll, int k_split, int warps_per_block>
__device__ __forceinline__ bool gemv_rows(const vec8<T>* const (&wv)[rows], const vec8<T>* xv, int64_t begin,
                                          int64_t end, bool active, float (&acc)[rows],
                                          float (&partial)[warps_per_block][rows], bool prefetch) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // The weights do not depend on earlier kernels: start pulling this warp's first pass into L2
  // while the kernel before it finishes (with programmatic dependent launch), then wait for x.
  if (active && prefetch)
#pragma unroll
    for (int r = 0; r < rows; ++r)
#pragma unroll
      for (int u = 0; u < unroll; ++u)
        if (begin + lane + 32 * u < end) prefetch_l2(wv[r] + begin + lane + 32 * u);
  wait_for_inputs();
#pragma unroll
  for (int r = 0; r < rows; ++r) acc[r] = 0.0f;
  if (active) {
    int64_t i = begin + lane;
    for (; i + 32 * (unroll - 1) < end; i += 32 * unroll) {
      vec8<T> xs[unroll], ws[rows][unroll];
#pragma unroll
      for (int u = 0; u < unroll; ++u) {
#pragma unroll
        for (int r = 0; r < rows; ++r) ws[r][u] = load_stream(wv[r] + i + 32 * u);
        xs[u] = load_stream(xv + i + 32 * u);
      }
#pragma unroll
      for (int u = 0; u < unroll; ++u)
#pragma unroll
        for (int r = 0; r < rows; ++r) acc[r] += dot8(ws[r][u], xs[u]);
    }
    for (; i < end; i += 32) {
      const vec8<T> xs = load_stream(xv + i);
#pragma unroll
      for (int r = 0; r < rows; ++r) acc[r] += dot8(load_stream(wv[r] + i), xs);
    }
  }
#pragma unroll
  for (int r = 0; r < rows; ++r) acc[r] = warp_sum(acc[r]);
  if constexpr (k_split > 1) {
    if (lane == 0)
#pragma unroll
      for (int r = 0; r < rows; ++r) partial[warp][r] = acc[r];
    __syncthreads();
    if (warp % k_split != 0) return false;
#pragma unroll
    for (int r = 0; r < rows; ++r) {
      acc[r] = 0.0f;
      for (int j = 0; j < k_split; ++j) acc[r] += partial[warp + j][r];
    }
  }
  return true;
}

}  // namespace troupe::kernels::cuda
