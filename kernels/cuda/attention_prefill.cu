// Paged attention for prefill, flash-attention style on the tensor cores (mma.sync m16n8k16, which
// sm_80 to sm_90 all have). A block of four warps takes 64 query rows of one sequence and one head;
// each warp owns 16 rows. Per 64-key tile gathered from the paged cache into shared memory:
// S = Q Kᵀ (float32 accumulators), causal and sliding-window masks, online softmax with the row
// statistics in registers, then O += P V with P rounded to the compute type. The keys cover the
// cached prefix too, so chunked prefill and prefix-cache hits need nothing special.
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/cuda_common.cuh"

#include <cmath>
#include <type_traits>

namespace troupe::kernels::cuda {
namespace {

constexpr int tile_q = 64, tile_k = 64, threads = 128;
constexpr float log2e = 1.4426950408889634f;

template <class T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, bf16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two floats as a pair of T in one register, the first in the low half.
template <class T>
__device__ __forceinline__ uint32_t pack_floats(float lo, float hi) {
  const T a = from_f<T>(lo), b = from_f<T>(hi);
  return uint32_t(*reinterpret_cast<const uint16_t*>(&a)) | (uint32_t(*reinterpret_cast<const uint16_t*>(&b)) << 16);
}

template <class T>
__device__ __forceinline__ uint32_t pack_elements(T lo, T hi) {
  return uint32_t(*reinterpret_cast<const uint16_t*>(&lo)) | (uint32_t(*reinterpret_cast<const uint16_t*>(&hi)) << 16);
}

__device__ __forceinline__ uint32_t load32(const void* p) { return *reinterpret_cast<const uint32_t*>(p); }

template <class T, int D>
__global__ void __launch_bounds__(threads) prefill_kernel(attention_args a) {
  constexpr int stride = D + 8;  // padded shared rows: the fragment loads hit distinct banks
  __shared__ alignas(16) T ks[tile_k * stride];
  __shared__ alignas(16) T vs[tile_k * stride];
  const int s = blockIdx.y, h = blockIdx.z;
  const int q0 = a.query_start_loc[s], q_len = a.query_start_loc[s + 1] - q0;
  const int tile_row = blockIdx.x * tile_q;
  if (tile_row >= q_len) return;
  const int len = a.seq_lens[s], start = len - q_len;
  const int g = h / (a.heads / a.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gid = lane / 4, tig = lane % 4;
  const int r_lo = tile_row + warp * 16 + gid, r_hi = r_lo + 8;  // query rows of this thread
  const int p_lo = start + r_lo, p_hi = start + r_hi;            // their positions

  // Q fragments for the whole head_dim, kept in registers.
  uint32_t qa[D / 16][4];
  const T* qbase = static_cast<const T*>(a.q) + (int64_t{q0} * a.heads + h) * D;
  const int64_t qstride = int64_t{a.heads} * D;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int col = kk * 16 + tig * 2;
    qa[kk][0] = r_lo < q_len ? load32(qbase + r_lo * qstride + col) : 0u;
    qa[kk][1] = r_hi < q_len ? load32(qbase + r_hi * qstride + col) : 0u;
    qa[kk][2] = r_lo < q_len ? load32(qbase + r_lo * qstride + col + 8) : 0u;
    qa[kk][3] = r_hi < q_len ? load32(qbase + r_hi * qstride + col + 8) : 0u;
  }
  float o[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.0f, l_hi = 0.0f;

  const int first_pos = start + tile_row;
  const int last_pos = min(len - 1, first_pos + tile_q - 1);
  const int kbeg = a.sliding_window > 0 ? max(0, first_pos - a.sliding_window + 1) : 0;
  const int kend = last_pos + 1;
  const float sl2 = a.scale * log2e;
  const T* kc = static_cast<const T*>(a.k_cache);
  const T* vc = static_cast<const T*>(a.v_cache);
  const int32_t* table = a.block_tables + int64_t{s} * a.max_blocks;

  for (int k0 = kbeg; k0 < kend; k0 += tile_k) {
    __syncthreads();  // every warp is done with the previous tile
    for (int c = threadIdx.x; c < tile_k * (D / 8); c += threads) {
      const int key = c / (D / 8), part = c % (D / 8), p = k0 + key;
      int4 kv = make_int4(0, 0, 0, 0), vv = make_int4(0, 0, 0, 0);
      if (p < kend) {
        const int64_t slot = int64_t{table[p / a.block_size]} * a.block_size + p % a.block_size;
        const int64_t off = (slot * a.kv_heads + g) * D + part * 8;
        kv = *reinterpret_cast<const int4*>(kc + off);
        vv = *reinterpret_cast<const int4*>(vc + off);
      }
      *reinterpret_cast<int4*>(ks + key * stride + part * 8) = kv;
      *reinterpret_cast<int4*>(vs + key * stride + part * 8) = vv;
    }
    __syncthreads();

    float sc[tile_k / 8][4];
#pragma unroll
    for (int nt = 0; nt < tile_k / 8; ++nt) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
      for (int nt = 0; nt < tile_k / 8; ++nt) {
        const T* kp = ks + (nt * 8 + gid) * stride + kk * 16 + tig * 2;
        mma16816<T>(sc[nt], qa[kk], load32(kp), load32(kp + 8));
      }

    float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < tile_k / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = k0 + nt * 8 + tig * 2 + (e & 1);
        const int pos = e < 2 ? p_lo : p_hi;
        const bool ok = key <= pos && key < kend && (a.sliding_window <= 0 || key > pos - a.sliding_window);
        sc[nt][e] = ok ? sc[nt][e] * sl2 : -INFINITY;
        if (e < 2) mx_lo = fmaxf(mx_lo, sc[nt][e]); else mx_hi = fmaxf(mx_hi, sc[nt][e]);
      }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, off));
      mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, off));
    }
    const float new_lo = fmaxf(m_lo, mx_lo), new_hi = fmaxf(m_hi, mx_hi);
    const float corr_lo = new_lo == -INFINITY ? 1.0f : exp2f(m_lo - new_lo);
    const float corr_hi = new_hi == -INFINITY ? 1.0f : exp2f(m_hi - new_hi);
    m_lo = new_lo;
    m_hi = new_hi;
    float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
    for (int nt = 0; nt < tile_k / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float mref = e < 2 ? m_lo : m_hi;
        const float p = mref == -INFINITY ? 0.0f : exp2f(sc[nt][e] - mref);
        sc[nt][e] = p;
        if (e < 2) sum_lo += p; else sum_hi += p;
      }
    l_lo = l_lo * corr_lo + sum_lo;
    l_hi = l_hi * corr_hi + sum_hi;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][0] *= corr_lo;
      o[dt][1] *= corr_lo;
      o[dt][2] *= corr_hi;
      o[dt][3] *= corr_hi;
    }
#pragma unroll
    for (int j = 0; j < tile_k / 16; ++j) {
      const uint32_t pa[4] = {pack_floats<T>(sc[2 * j][0], sc[2 * j][1]), pack_floats<T>(sc[2 * j][2], sc[2 * j][3]),
                              pack_floats<T>(sc[2 * j + 1][0], sc[2 * j + 1][1]),
                              pack_floats<T>(sc[2 * j + 1][2], sc[2 * j + 1][3])};
      const T* v0 = vs + (j * 16 + tig * 2) * stride + gid;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        const T* vp = v0 + dt * 8;
        mma16816<T>(o[dt], pa, pack_elements(vp[0], vp[stride]), pack_elements(vp[8 * stride], vp[9 * stride]));
      }
    }
  }
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    l_lo += __shfl_xor_sync(0xffffffffu, l_lo, off);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, off);
  }
  const float inv_lo = l_lo > 0.0f ? 1.0f / l_lo : 0.0f, inv_hi = l_hi > 0.0f ? 1.0f / l_hi : 0.0f;
  T* obase = static_cast<T*>(a.out) + (int64_t{q0} * a.heads + h) * D;
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    const int col = dt * 8 + tig * 2;
    if (r_lo < q_len)
      *reinterpret_cast<uint32_t*>(obase + r_lo * qstride + col) = pack_floats<T>(o[dt][0] * inv_lo, o[dt][1] * inv_lo);
    if (r_hi < q_len)
      *reinterpret_cast<uint32_t*>(obase + r_hi * qstride + col) = pack_floats<T>(o[dt][2] * inv_hi, o[dt][3] * inv_hi);
  }
}

}  // namespace

bool prefill_supported(dtype type, int head_dim) {
  return type != dtype::f32 && (head_dim == 64 || head_dim == 128);
}

cudaError_t attention_prefill(dtype type, const attention_args& a, cudaStream_t stream) {
  if (a.tokens <= 0) return cudaSuccess;
  if (!prefill_supported(type, a.head_dim)) return cudaErrorInvalidValue;
  dim3 grid(static_cast<unsigned>((a.max_query_len + tile_q - 1) / tile_q), static_cast<unsigned>(a.num_seqs),
            static_cast<unsigned>(a.heads));
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    if constexpr (!std::is_same_v<T, float>) {
      if (a.head_dim == 64) prefill_kernel<T, 64><<<grid, threads, 0, stream>>>(a);
      else prefill_kernel<T, 128><<<grid, threads, 0, stream>>>(a);
    }
  });
  return cudaGetLastError();
}

}  // namespace troupe::kernels::cuda
