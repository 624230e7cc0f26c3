// RoPE fused with the paged KV write. Each thread rotates V pairs of one head (V consecutive
// elements of each half, 16-byte accesses when V is 8) or copies V values into the cache; a token's
// work is spread over blocks of 128 threads.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/rope_kv.cuh"

#include <type_traits>

namespace troupe::kernels::cuda {
namespace {

constexpr int threads = 128;

template <class T, int V>
struct alignas(sizeof(T) * V) pack {
  T v[V];
};

template <class T, int V>
__device__ __forceinline__ pack<T, V> load_pack(const T* p) {
  return *reinterpret_cast<const pack<T, V>*>(p);
}

template <class T, int V>
__device__ __forceinline__ void store_pack(T* p, const pack<T, V>& x) {
  *reinterpret_cast<pack<T, V>*>(p) = x;
}

template <class T, int V>
__global__ void __launch_bounds__(threads) rope_kv_kernel(rope_kv_args a) {
  wait_for_inputs();
  const int64_t t = blockIdx.x;
  const int half = a.head_dim / 2, per_head = half / V;
  const int rope_items = (a.heads + a.kv_heads) * per_head;
  const int j = blockIdx.y * threads + threadIdx.x;
  if (j >= rope_items + a.kv_heads * a.head_dim / V) return;
  const int32_t slot = a.slots[t];
  const bool write = slot >= 0 && slot < a.num_slots;
  const int64_t q_row = int64_t{a.heads} * a.head_dim, kv_row = int64_t{a.kv_heads} * a.head_dim;
  const T* row = static_cast<const T*>(a.qkv) + t * (q_row + 2 * kv_row);
  if (j >= rope_items) {  // a value chunk
    if (!write) return;
    const int64_t i = int64_t{j - rope_items} * V;
    store_pack<T, V>(static_cast<T*>(a.v_cache) + slot * kv_row + i, load_pack<T, V>(row + q_row + kv_row + i));
    return;
  }
  const int h = j / per_head, i0 = (j % per_head) * V;
  const bool is_q = h < a.heads;
  if (!is_q && !write) return;
  const T* src = row + int64_t{h} * a.head_dim;  // query heads, then key heads
  const pack<T, V> x1 = load_pack<T, V>(src + i0), x2 = load_pack<T, V>(src + i0 + half);
  const float pos = static_cast<float>(a.positions[t]);
  pack<T, V> y1, y2;
#pragma unroll
  for (int e = 0; e < V; ++e) {
    float first, second;
    rotate_half_pair(to_f(x1.v[e]), to_f(x2.v[e]), pos, a.inv_freq[i0 + e], first, second);
    y1.v[e] = from_f<T>(first);
    y2.v[e] = from_f<T>(second);
  }
  T* dst = is_q ? static_cast<T*>(a.q) + t * q_row + int64_t{h} * a.head_dim
                : static_cast<T*>(a.k_cache) + slot * kv_row + int64_t{h - a.heads} * a.head_dim;
  store_pack<T, V>(dst + i0, y1);
  store_pack<T, V>(dst + i0 + half, y2);
}

template <class T, int V>
cudaError_t launch_rope(const rope_kv_args& a, cudaStream_t stream) {
  const int items = (a.heads + a.kv_heads) * (a.head_dim / 2 / V) + a.kv_heads * a.head_dim / V;
  const dim3 grid(static_cast<unsigned>(a.tokens), static_cast<unsigned>((items + threads - 1) / threads));
  return launch(rope_kv_kernel<T, V>, grid, threads, 0, stream, a);
}

}  // namespace

cudaError_t rope_write_kv(dtype type, const rope_kv_args& a, cudaStream_t stream) {
  if (a.tokens <= 0) return cudaSuccess;
  if (a.head_dim % 2 != 0) return cudaErrorInvalidValue;
  const bool wide = a.head_dim % 16 == 0 && aligned16(a.qkv) && aligned16(a.q) && aligned16(a.k_cache) &&
                    aligned16(a.v_cache);
  cudaError_t err = cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    err = wide && !std::is_same_v<T, float> ? launch_rope<T, 8>(a, stream) : launch_rope<T, 1>(a, stream);
  });
  return err;
}

}  // namespace troupe::kernels::cuda
