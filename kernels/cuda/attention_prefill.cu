// Paged attention for prefill, flash-attention style on the tensor cores (mma.sync m16n8k16, which
// sm_80 to sm_90 all have). A block of four warps takes 64 query rows of one sequence and one head;
// each warp owns 16 rows. Per 64-key tile gathered from the paged cache into shared memory (cp.async,
// two stages: the next tile loads while this one is used; fragments through ldmatrix):
// S = Q Kᵀ (float32 accumulators), causal and sliding-window masks, online softmax with the row
// statistics in registers, then O += P V with P rounded to the compute type. The keys cover the
// cached prefix too, so chunked prefill and prefix-cache hits need nothing special.
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/cp_async.cuh"
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

// Four 8x8 matrices of 16-bit elements from shared memory; lanes 8i..8i+7 give matrix i's row addresses.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  const auto a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// The same, each matrix transposed.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  const auto a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

template <class T, int D>
constexpr int smem_bytes() {
  return 4 * tile_k * (D + 8) * static_cast<int>(sizeof(T));  // two stages of K and V tiles
}

template <class T, int D>
__global__ void __launch_bounds__(threads) prefill_kernel(attention_args a) {
  constexpr int stride = D + 8;  // padded shared rows: ldmatrix rows fall in distinct banks
  constexpr int tile_elems = tile_k * stride;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* const smem = reinterpret_cast<T*>(smem_raw);  // stage s: K at 2s, V at 2s + 1 tiles
  const int s = a.seq_list != nullptr ? a.seq_list[blockIdx.y] : blockIdx.y, h = blockIdx.z;
  const int q0 = a.query_start_loc[s], q_len = a.query_start_loc[s + 1] - q0;
  const int tile_row = (gridDim.x - 1 - blockIdx.x) * tile_q;  // the longest rows first
  if (tile_row >= q_len) return;
  const int len = a.seq_lens[s], start = len - q_len;
  const int g = h / (a.heads / a.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gid = lane / 4, tig = lane % 4;
  const int r_lo = tile_row + warp * 16 + gid, r_hi = r_lo + 8;  // query rows of this thread
  const int p_lo = start + r_lo, p_hi = start + r_hi;            // their positions
  const int warp_first = start + tile_row + warp * 16, warp_last = warp_first + 15;

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

  // Gathers keys [k0, k0 + tile_k) of the sequence from the paged cache into a stage, asynchronously.
  // This thread copies the 16-byte chunk `part` of keys key0, key0 + key_step, ... (page_math finds
  // a key's page).
  constexpr int chunks = D / 8, key_step = threads / chunks;
  const int part = threadIdx.x % chunks, key0 = threadIdx.x / chunks;
  const page_math pages(a.block_size);
  const int64_t slot_stride = int64_t{a.kv_heads} * D, col = int64_t{g} * D + part * 8;
  auto load_tile = [&](int k0, int stage) {
    T* ks = smem + 2 * stage * tile_elems + key0 * stride + part * 8;
    T* vs = ks + tile_elems;
#pragma unroll
    for (int i = 0; i < tile_k / key_step; ++i) {
      const int p = k0 + key0 + i * key_step;
      const bool valid = p < kend;
      int64_t off = 0;
      if (valid) {
        off = (int64_t{table[pages.page(p)]} * a.block_size + pages.offset(p)) * slot_stride + col;
      }
      cp_async16(ks + i * key_step * stride, kc + off, valid);
      cp_async16(vs + i * key_step * stride, vc + off, valid);
    }
    cp_async_commit();
  };

  int stage = 0;
  if (kbeg < kend) load_tile(kbeg, 0);
  for (int k0 = kbeg; k0 < kend; k0 += tile_k) {
    if (k0 + tile_k < kend) {
      load_tile(k0 + tile_k, stage ^ 1);  // the next tile streams in while this one is used
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* ks = smem + 2 * stage * tile_elems;
    const T* vs = ks + tile_elems;

    float sc[tile_k / 8][4];
#pragma unroll
    for (int nt = 0; nt < tile_k / 8; ++nt) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
      for (int nt = 0; nt < tile_k / 8; nt += 2) {
        uint32_t b[4];  // (keys nt, dims lo), (nt, hi), (nt + 1, lo), (nt + 1, hi)
        ldmatrix_x4(b, ks + (nt * 8 + (lane & 7) + ((lane >> 4) << 3)) * stride + kk * 16 + ((lane >> 3) & 1) * 8);
        mma16816<T>(sc[nt], qa[kk], b[0], b[1]);
        mma16816<T>(sc[nt + 1], qa[kk], b[2], b[3]);
      }

    // Masks only where a tile crosses the diagonal, the window's edge or the end of the keys.
    const bool full = k0 + tile_k - 1 <= warp_first && (a.sliding_window <= 0 || k0 > warp_last - a.sliding_window);
    float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < tile_k / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        bool ok = true;
        if (!full) {
          const int key = k0 + nt * 8 + tig * 2 + (e & 1);
          const int pos = e < 2 ? p_lo : p_hi;
          ok = key <= pos && key < kend && (a.sliding_window <= 0 || key > pos - a.sliding_window);
        }
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
#pragma unroll
      for (int dt = 0; dt < D / 8; dt += 2) {
        uint32_t b[4];  // transposed: (keys lo, dims dt), (keys hi, dt), (keys lo, dt + 1), (keys hi, dt + 1)
        ldmatrix_x4_trans(b, vs + (j * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * stride + dt * 8 + (lane >> 4) * 8);
        mma16816<T>(o[dt], pa, b[0], b[1]);
        mma16816<T>(o[dt + 1], pa, b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with this stage before the next load overwrites it
    stage ^= 1;
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

template <class T, int D>
cudaError_t launch_prefill(const attention_args& a, dim3 grid, cudaStream_t stream) {
  constexpr int bytes = smem_bytes<T, D>();
  if (cudaError_t e = cudaFuncSetAttribute(prefill_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
      e != cudaSuccess)
    return e;
  prefill_kernel<T, D><<<grid, threads, bytes, stream>>>(a);
  return cudaGetLastError();
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
  cudaError_t result = cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    if constexpr (!std::is_same_v<T, float>)
      result = a.head_dim == 64 ? launch_prefill<T, 64>(a, grid, stream) : launch_prefill<T, 128>(a, grid, stream);
  });
  return result;
}

}  // namespace troupe::kernels::cuda
