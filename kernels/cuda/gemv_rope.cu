// Decode's q/k/v gemv with RoPE and the KV write in the epilogue: one kernel where three ran
// (gemv, RoPE, cache write), so a batch-1 step has one launch fewer per layer. A warp streams the
// two weight rows of one rotated pair, so its lane 0 holds both values the rotation needs.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gemv_rope.cuh"
#include "kernels/cuda/gemv_rows.cuh"

#include <type_traits>

namespace troupe::kernels::cuda {
namespace {

// The tiling of gemv's tiling 2 (two rows a warp, four loads in flight, eight warps, no k split),
// so the products are summed in the same order as there.
constexpr int warps = 8, unroll = 4;

template <class T>
__global__ void __launch_bounds__(warps * 32)
    gemv_rope_kernel(const T* __restrict__ x, const T* __restrict__ w, const float* __restrict__ bias, int64_t k,
                     rope_kv_args r) {
  __shared__ float partial[warps][2];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int half = r.head_dim / 2;
  const int pair = blockIdx.x * warps + warp, pairs = (r.heads + 2 * r.kv_heads) * half;
  const int h = pair / half, i = pair % half;
  const int64_t row0 = int64_t{h} * r.head_dim + i, row1 = row0 + half;
  const bool active = pair < pairs;
  const vec8<T>* wv[2] = {reinterpret_cast<const vec8<T>*>(w + (active ? row0 : 0) * k),
                          reinterpret_cast<const vec8<T>*>(w + (active ? row1 : 0) * k)};
  float acc[2];
  gemv_rows<T, 2, unroll, 1, warps>(wv, reinterpret_cast<const vec8<T>*>(x), 0, k / 8, active, acc, partial);
  if (lane != 0 || !active) return;
  const float u = round_to<T>(acc[0] + (bias != nullptr ? bias[row0] : 0.0f));
  const float v = round_to<T>(acc[1] + (bias != nullptr ? bias[row1] : 0.0f));
  const int32_t slot = r.slots[0];
  const bool write = slot >= 0 && slot < r.num_slots;
  const int64_t kv_row = int64_t{r.kv_heads} * r.head_dim;
  T* dst;
  if (h < r.heads) {
    dst = static_cast<T*>(r.q) + int64_t{h} * r.head_dim;
  } else if (!write) {
    return;
  } else if (h < r.heads + r.kv_heads) {
    dst = static_cast<T*>(r.k_cache) + slot * kv_row + int64_t{h - r.heads} * r.head_dim;
  } else {  // a value pair: no rotation
    T* vc = static_cast<T*>(r.v_cache) + slot * kv_row + int64_t{h - r.heads - r.kv_heads} * r.head_dim;
    vc[i] = from_f<T>(u);
    vc[i + half] = from_f<T>(v);
    return;
  }
  float s, c;
  sincosf(static_cast<float>(r.positions[0]) * r.inv_freq[i], &s, &c);  // as rope_write_kv
  dst[i] = from_f<T>(u * c - v * s);
  dst[i + half] = from_f<T>(v * c + u * s);
}

}  // namespace

cudaError_t gemv_rope(dtype type, const void* x, const void* w, const float* bias, int64_t k, const rope_kv_args& r,
                      cudaStream_t stream) {
  if (r.tokens != 1 || r.head_dim % 2 != 0) return cudaErrorInvalidValue;
  const int pairs = (r.heads + 2 * r.kv_heads) * (r.head_dim / 2);
  const auto blocks = static_cast<unsigned>((pairs + warps - 1) / warps);
  cudaError_t err = cudaErrorInvalidValue;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    if constexpr (!std::is_same_v<T, float>)
      err = launch(gemv_rope_kernel<T>, blocks, warps * 32, 0, stream, static_cast<const T*>(x), static_cast<const T*>(w),
                   bias, k, r);
  });
  return err;
}

}  // namespace troupe::kernels::cuda
