// RoPE fused with the paged KV write: one block per token; the angle table of the token in shared memory.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/rope_kv.cuh"

namespace troupe::kernels::cuda {
namespace {

constexpr int max_half = 256;

template <class T>
__global__ void rope_kv_kernel(rope_kv_args a) {
  __shared__ float cos_t[max_half], sin_t[max_half];
  const int64_t t = blockIdx.x;
  const int half = a.head_dim / 2;
  const float pos = static_cast<float>(a.positions[t]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float s, c;
    sincosf(pos * a.inv_freq[i], &s, &c);  // as Hugging Face: float32 angle, float32 cos and sin
    cos_t[i] = c;
    sin_t[i] = s;
  }
  __syncthreads();
  const int32_t slot = a.slots[t];
  const bool write = slot >= 0 && slot < a.num_slots;
  T* q = static_cast<T*>(a.q) + t * a.heads * a.head_dim;
  T* k = static_cast<T*>(a.k) + t * a.kv_heads * a.head_dim;
  const int64_t kv_row = int64_t{a.kv_heads} * a.head_dim;
  T* kc = static_cast<T*>(a.k_cache) + int64_t{slot} * kv_row;
  const int pairs = (a.heads + a.kv_heads) * half;
  for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
    const int h = p / half, i = p % half;
    const bool is_q = h < a.heads;
    T* x = is_q ? q + h * a.head_dim : k + (h - a.heads) * a.head_dim;
    const float x1 = to_f(x[i]), x2 = to_f(x[i + half]);
    const T y1 = from_f<T>(x1 * cos_t[i] - x2 * sin_t[i]);
    const T y2 = from_f<T>(x2 * cos_t[i] + x1 * sin_t[i]);
    x[i] = y1;
    x[i + half] = y2;
    if (!is_q && write) {
      T* c = kc + (h - a.heads) * a.head_dim;
      c[i] = y1;
      c[i + half] = y2;
    }
  }
  if (!write) return;
  const T* v = static_cast<const T*>(a.v) + t * kv_row;
  T* vc = static_cast<T*>(a.v_cache) + int64_t{slot} * kv_row;
  for (int64_t i = threadIdx.x; i < kv_row; i += blockDim.x) vc[i] = v[i];
}

}  // namespace

cudaError_t rope_write_kv(dtype type, const rope_kv_args& a, cudaStream_t stream) {
  if (a.tokens <= 0) return cudaSuccess;
  if (a.head_dim / 2 > max_half) return cudaErrorInvalidValue;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    rope_kv_kernel<T><<<static_cast<unsigned>(a.tokens), 256, 0, stream>>>(a);
  });
  return cudaGetLastError();
}

}  // namespace troupe::kernels::cuda
