// RoPE fused with the paged KV write: one thread per rotated pair; the token's angles in shared memory.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/rope_kv.cuh"

namespace troupe::kernels::cuda {
namespace {

constexpr int max_half = 256;

// Block (t, y) rotates pairs [y * threads, (y + 1) * threads) of token t, one pair per thread, so the
// loads of a token are spread over many blocks instead of serialised in one (q and k are updated in
// place, so a thread's next load could not be issued before its previous store).
constexpr int threads = 128;

template <class T>
__global__ void __launch_bounds__(threads) rope_kv_kernel(rope_kv_args a) {
  wait_for_inputs();
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
  const int64_t kv_row = int64_t{a.kv_heads} * a.head_dim;
  const int p = blockIdx.y * threads + threadIdx.x;
  if (p < (a.heads + a.kv_heads) * half) {
    const int h = p / half, i = p % half;
    const bool is_q = h < a.heads;
    T* x = is_q ? static_cast<T*>(a.q) + (t * a.heads + h) * a.head_dim
                : static_cast<T*>(a.k) + t * kv_row + (h - a.heads) * a.head_dim;
    const float x1 = to_f(x[i]), x2 = to_f(x[i + half]);
    const T y1 = from_f<T>(x1 * cos_t[i] - x2 * sin_t[i]);
    const T y2 = from_f<T>(x2 * cos_t[i] + x1 * sin_t[i]);
    x[i] = y1;
    x[i + half] = y2;
    if (!is_q && write) {
      T* c = static_cast<T*>(a.k_cache) + int64_t{slot} * kv_row + (h - a.heads) * a.head_dim;
      c[i] = y1;
      c[i + half] = y2;
    }
  }
  if (!write) return;
  const T* v = static_cast<const T*>(a.v) + t * kv_row;
  T* vc = static_cast<T*>(a.v_cache) + int64_t{slot} * kv_row;
  for (int64_t i = int64_t{blockIdx.y} * threads + threadIdx.x; i < kv_row; i += int64_t{gridDim.y} * threads)
    vc[i] = v[i];
}

}  // namespace

cudaError_t rope_write_kv(dtype type, const rope_kv_args& a, cudaStream_t stream) {
  if (a.tokens <= 0) return cudaSuccess;
  if (a.head_dim / 2 > max_half) return cudaErrorInvalidValue;
  cudaError_t err = cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    const int pairs = (a.heads + a.kv_heads) * (a.head_dim / 2);
    const dim3 grid(static_cast<unsigned>(a.tokens), static_cast<unsigned>((pairs + threads - 1) / threads));
    err = launch(rope_kv_kernel<T>, grid, threads, 0, stream, a);
  });
  return err;
}

}  // namespace troupe::kernels::cuda
