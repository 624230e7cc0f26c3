// Rotary position embedding of q and k, fused with writing k and v into the paged KV cache.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.hpp"

namespace troupe::kernels::cuda {

struct rope_kv_args {
  const void* qkv = nullptr;        ///< [tokens, heads + 2 * kv_heads, head_dim]: q heads, k heads, v heads
  void* q = nullptr;                ///< [tokens, heads, head_dim]: the rotated queries
  const int32_t* positions = nullptr;
  const float* inv_freq = nullptr;  ///< [head_dim / 2], float32
  const int32_t* slots = nullptr;   ///< [tokens]; negative: no cache write
  void* k_cache = nullptr;          ///< [num_slots, kv_heads, head_dim]
  void* v_cache = nullptr;
  int64_t tokens = 0, num_slots = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
};

/// Rotate-half RoPE (Hugging Face Llama layout) at angle positions[t] * inv_freq[i], computed in
/// float32 with accurate sine and cosine: rotated queries to q, rotated keys and the values to the
/// cache. Slots past num_slots are skipped.
cudaError_t rope_write_kv(dtype type, const rope_kv_args& a, cudaStream_t stream);

#ifdef __CUDACC__
/// One rotate-half pair (u at element i, w at i + head_dim / 2) at angle pos * inv_freq, as Hugging
/// Face computes it (float32 angle, float32 cosine and sine). rope_write_kv and decode attention's
/// fused RoPE both rotate through this, so the two paths give the same values.
__device__ __forceinline__ void rotate_half_pair(float u, float w, float pos, float inv_freq, float& first,
                                                 float& second) {
  float s, c;
  sincosf(pos * inv_freq, &s, &c);
  first = u * c - w * s;
  second = w * c + u * s;
}
#endif

}  // namespace troupe::kernels::cuda
