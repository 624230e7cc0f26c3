// Paged attention, one query row at a time (decode; also any head_dim the prefill kernel lacks).
// A block serves one row, one KV head and up to eight of its query heads, so each key and value
// is loaded once for the whole group; a subgroup of head_dim / 8 lanes takes one key (16 bytes per
// lane), and long contexts are split over blocks whose partial results the last of them combines.
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/cuda_common.cuh"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>
#include <type_traits>

namespace troupe::kernels::cuda {
namespace {

constexpr int warps = 4;
constexpr int max_group = 8;           // query heads per block at most (G, a template argument, is 1, 2, 4 or 8:
                                       // the smallest that holds the group, so MHA keeps few registers)
constexpr int min_keys_per_split = 32;
constexpr int unroll = 4;               // keys per subgroup in a pipeline stage
constexpr int stages = 3;               // pipeline stages: stages - 1 tiles in flight while one is computed
constexpr float log2e = 1.4426950408889634f;

template <class T>
__device__ __forceinline__ vec8<T> load8(const T* p) {
  vec8<T> v;
  *reinterpret_cast<int4*>(&v) = *reinterpret_cast<const int4*>(p);
  return v;
}

// The sequence whose rows hold row t: the last s with query_start_loc[s] <= t.
__device__ __forceinline__ int find_sequence(const int32_t* qsl, int num_seqs, int t) {
  int lo = 0, hi = num_seqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (qsl[mid] <= t) lo = mid; else hi = mid - 1;
  }
  return lo;
}

// The previous kernel (direct loads, unroll 4), kept for comparison in benchmarks: TROUPE_ATTN_DECODE=v0.
template <class T, int D, int G, bool P>
__global__ void __launch_bounds__(warps * 32)
    rows_kernel_v0(attention_args a, int num_splits, int keys_per_split, float* scratch, int* counters) {
  constexpr int lanes_per_key = D / 8, keys_per_warp = 32 / lanes_per_key, subs = warps * keys_per_warp;
  __shared__ float sm_m[subs][G], sm_l[subs][G];
  __shared__ float sm_acc[subs][G][D];
  const int t = blockIdx.x, split = blockIdx.z;
  const int group = a.heads / a.kv_heads, chunks = (group + G - 1) / G;
  const int g = blockIdx.y / chunks, chunk = blockIdx.y % chunks;
  const int h0 = g * group + chunk * G;
  const int hcount = min(G, group - chunk * G);
  const int s = find_sequence(a.query_start_loc, a.num_seqs, t);
  const int q_start = a.query_start_loc[s], q_len = a.query_start_loc[s + 1] - q_start;
  const int pos = a.seq_lens[s] - q_len + (t - q_start);
  const int first = a.sliding_window > 0 ? max(0, pos - a.sliding_window + 1) : 0;
  const int kbeg = first + split * keys_per_split;
  const int kend = min(pos + 1, kbeg + keys_per_split);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int sub = lane / lanes_per_key, part = lane % lanes_per_key;

  float qf[G][8], acc[G][8], m[G], l[G];
  const float qscale = a.scale * log2e;  // scores in the base-2 domain
#pragma unroll
  for (int i = 0; i < G; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
    vec8<T> qv{};
    if (i < hcount) qv = load8(static_cast<const T*>(a.q) + (int64_t{t} * a.heads + h0 + i) * D + part * 8);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      qf[i][e] = i < hcount ? to_f(qv.v[e]) * qscale : 0.0f;
      acc[i][e] = 0.0f;
    }
  }
  const T* kc = static_cast<const T*>(a.k_cache);
  const T* vc = static_cast<const T*>(a.v_cache);
  const int32_t* table = a.block_tables + int64_t{s} * a.max_blocks;
  // Each pass takes `unroll` keys per subgroup, all loads issued before the first is used; the
  // next pass's keys and values are loaded while this pass computes (P, off by default; G <= 4).
  constexpr int step = warps * keys_per_warp;
  constexpr bool prefetch = P && G <= 4;
  vec8<T> kv[unroll], vv[unroll];
  bool valid[unroll];
  auto load_pass = [&](int base, vec8<T> (&kd)[unroll], vec8<T> (&vd)[unroll], bool (&ok)[unroll]) {
#pragma unroll
    for (int u = 0; u < unroll; ++u) {
      const int p = base + u * step + sub;
      ok[u] = p < kend;
      kd[u] = vec8<T>{};
      vd[u] = vec8<T>{};
      if (ok[u]) {
        const int64_t slot = int64_t{table[p / a.block_size]} * a.block_size + p % a.block_size;
        const int64_t off = (slot * a.kv_heads + g) * D + part * 8;
        kd[u] = load8(kc + off);
        vd[u] = load8(vc + off);
      }
    }
  };
  int base = kbeg + warp * keys_per_warp;
  if constexpr (prefetch) load_pass(base, kv, vv, valid);
  for (; base < kend; base += step * unroll) {
    vec8<T> kn[unroll], vn[unroll];
    bool vnext[unroll];
    if constexpr (prefetch) load_pass(base + step * unroll, kn, vn, vnext);
    else load_pass(base, kv, vv, valid);
#pragma unroll
    for (int u = 0; u < unroll; ++u) {
      float kf[8], vf[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        kf[e] = to_f(kv[u].v[e]);
        vf[e] = to_f(vv[u].v[e]);
      }
#pragma unroll
      for (int i = 0; i < G; ++i) {
        if (i >= hcount) continue;  // uniform over the block
        float d = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) d += qf[i][e] * kf[e];
#pragma unroll
        for (int o = lanes_per_key / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
        if (valid[u]) {
          const float mn = fmaxf(m[i], d);
          const float c = exp2f(m[i] - mn), w = exp2f(d - mn);
          l[i] = l[i] * c + w;
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[i][e] = acc[i][e] * c + w * vf[e];
          m[i] = mn;
        }
      }
    }
    if constexpr (prefetch) {
#pragma unroll
      for (int u = 0; u < unroll; ++u) {
        kv[u] = kn[u];
        vv[u] = vn[u];
        valid[u] = vnext[u];
      }
    }
  }
  const int me = warp * keys_per_warp + sub;
#pragma unroll
  for (int i = 0; i < G; ++i) {
    if (i >= hcount) continue;
    if (part == 0) {
      sm_m[me][i] = m[i];
      sm_l[me][i] = l[i];
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) sm_acc[me][i][part * 8 + e] = acc[i][e];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < hcount * D; idx += blockDim.x) {
    const int i = idx / D, d = idx % D;
    float mx = -INFINITY;
    for (int j = 0; j < subs; ++j) mx = fmaxf(mx, sm_m[j][i]);
    float total_l = 0.0f, total = 0.0f;
    if (mx != -INFINITY)
      for (int j = 0; j < subs; ++j) {
        const float w = sm_m[j][i] == -INFINITY ? 0.0f : exp2f(sm_m[j][i] - mx);
        total_l += w * sm_l[j][i];
        total += w * sm_acc[j][i][d];
      }
    const int64_t row = int64_t{t} * a.heads + h0 + i;
    if (num_splits == 1) {
      static_cast<T*>(a.out)[row * D + d] = from_f<T>(total_l > 0.0f ? total / total_l : 0.0f);
    } else {
      const int64_t at = row * num_splits + split;
      scratch[at * D + d] = total;
      if (d == 0) {
        float* ml = scratch + int64_t{a.tokens} * a.heads * num_splits * D;
        ml[at * 2] = mx;
        ml[at * 2 + 1] = total_l;
      }
    }
  }
  if (num_splits == 1) return;
  // The last block of this (row, head group) to finish combines every split: weights 2^(m_z - max m)
  // on the partial sums and denominators (the counter is reset for the next call).
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    int* counter = counters + blockIdx.x * gridDim.y + blockIdx.y;
    last = atomicAdd(counter, 1) == num_splits - 1;
    if (last) *counter = 0;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  const float* ml = scratch + int64_t{a.tokens} * a.heads * num_splits * D;
  for (int idx = threadIdx.x; idx < hcount * D; idx += blockDim.x) {
    const int i = idx / D, d = idx % D;
    const int64_t row = int64_t{t} * a.heads + h0 + i;
    float mx = -INFINITY;
    for (int z = 0; z < num_splits; ++z) mx = fmaxf(mx, __ldcg(ml + (row * num_splits + z) * 2));
    float total = 0.0f, total_l = 0.0f;
    if (mx != -INFINITY)
      for (int z = 0; z < num_splits; ++z) {
        const float mz = __ldcg(ml + (row * num_splits + z) * 2);
        const float w = mz == -INFINITY ? 0.0f : exp2f(mz - mx);
        total_l += w * __ldcg(ml + (row * num_splits + z) * 2 + 1);
        total += w * __ldcg(scratch + (row * num_splits + z) * D + d);
      }
    static_cast<T*>(a.out)[row * D + d] = from_f<T>(total_l > 0.0f ? total / total_l : 0.0f);
  }
}


// 16 bytes global -> shared without passing through registers; zeros when !valid.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const auto d = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending));
}

// The sequence of row t: t itself when every sequence has one row (decode), else a search.
__device__ __forceinline__ int row_sequence(const attention_args& a, int t) {
  return a.tokens == a.num_seqs && a.max_query_len == 1 ? t : find_sequence(a.query_start_loc, a.num_seqs, t);
}

template <int D, int G, int U, int S>
constexpr int rows_smem_bytes() {
  constexpr int subs = warps * (32 / (D / 8));
  constexpr int pipeline = S * U * 2 * warps * 32 * 16;  // [stage][key][K, V][thread] of 16 bytes
  constexpr int reduce = subs * G * (D + 2) * 4;          // the subgroups' m, l and sums at the end
  return pipeline > reduce ? pipeline : reduce;
}

// A tile is U keys per subgroup (U * subs keys per block). Each thread copies with cp.async exactly
// the 16 bytes of K and of V it later reads, so the S-stage pipeline needs no barrier: S - 1 tiles
// are in flight while one is computed. The block-table entries of a tile are read one tile ahead.
template <class T, int D, int G, int U, int S>
__global__ void __launch_bounds__(warps * 32)
    rows_kernel(attention_args a, int num_splits, int keys_per_split, float* scratch, int* counters) {
  constexpr int lanes_per_key = D / 8, keys_per_warp = 32 / lanes_per_key, subs = warps * keys_per_warp;
  constexpr int threads = warps * 32, tile = subs * U;
  extern __shared__ __align__(16) unsigned char smem[];
  int4* const buf = reinterpret_cast<int4*>(smem);
  const int t = blockIdx.x, split = blockIdx.z;
  const int group = a.heads / a.kv_heads, chunks = (group + G - 1) / G;
  const int g = blockIdx.y / chunks, chunk = blockIdx.y % chunks;
  const int h0 = g * group + chunk * G;
  const int hcount = min(G, group - chunk * G);
  const int s = row_sequence(a, t);
  const int q_start = a.query_start_loc[s], q_len = a.query_start_loc[s + 1] - q_start;
  const int pos = a.seq_lens[s] - q_len + (t - q_start);
  const int first = a.sliding_window > 0 ? max(0, pos - a.sliding_window + 1) : 0;
  const int kbeg = first + split * keys_per_split;
  const int kend = min(pos + 1, kbeg + keys_per_split);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int sub = lane / lanes_per_key, part = lane % lanes_per_key;
  const int me = warp * keys_per_warp + sub;
  const T* kc = static_cast<const T*>(a.k_cache);
  const T* vc = static_cast<const T*>(a.v_cache);
  const int32_t* table = a.block_tables + int64_t{s} * a.max_blocks;
  const int ntiles = kend > kbeg ? (kend - kbeg + tile - 1) / tile : 0;

  int page[U];
  auto fetch_pages = [&](int j) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int p = kbeg + j * tile + u * subs + me;
      page[u] = p < kend ? __ldg(table + p / a.block_size) : 0;
    }
  };
  auto issue = [&](int j) {
    if (j < ntiles) {
      const int st = j % S;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int p = kbeg + j * tile + u * subs + me;
        const bool ok = p < kend;
        const int64_t off =
            ok ? ((int64_t{page[u]} * a.block_size + p % a.block_size) * a.kv_heads + g) * D + part * 8 : 0;
        cp_async16(buf + ((st * U + u) * 2) * threads + threadIdx.x, kc + off, ok);
        cp_async16(buf + ((st * U + u) * 2 + 1) * threads + threadIdx.x, vc + off, ok);
      }
    }
    cp_async_commit();
  };
#pragma unroll
  for (int j = 0; j < S - 1; ++j) {
    fetch_pages(j);
    issue(j);
  }
  fetch_pages(S - 1);

  float qf[G][8], acc[G][8], m[G], l[G];
  const float qscale = a.scale * log2e;  // scores in the base-2 domain
#pragma unroll
  for (int i = 0; i < G; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
    vec8<T> qv{};
    if (i < hcount) qv = load8(static_cast<const T*>(a.q) + (int64_t{t} * a.heads + h0 + i) * D + part * 8);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      qf[i][e] = to_f(qv.v[e]) * qscale;  // zero for heads past the group: their results are not written
      acc[i][e] = 0.0f;
    }
  }

  for (int j = 0; j < ntiles; ++j) {
    issue(j + S - 1);
    fetch_pages(j + S);
    cp_async_wait<S - 1>();
    const int st = j % S;
    float d[G][U];
    bool ok[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      ok[u] = kbeg + j * tile + u * subs + me < kend;
      vec8<T> kv;
      *reinterpret_cast<int4*>(&kv) = buf[((st * U + u) * 2) * threads + threadIdx.x];
      float kf[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) kf[e] = to_f(kv.v[e]);
#pragma unroll
      for (int i = 0; i < G; ++i) {
        float x = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) x += qf[i][e] * kf[e];
        d[i][u] = x;
      }
    }
#pragma unroll
    for (int o = lanes_per_key / 2; o > 0; o >>= 1)
#pragma unroll
      for (int i = 0; i < G; ++i)
#pragma unroll
        for (int u = 0; u < U; ++u) d[i][u] += __shfl_xor_sync(0xffffffffu, d[i][u], o);
    // One rescale per tile: the new maximum over the tile's valid keys.
#pragma unroll
    for (int i = 0; i < G; ++i) {
      float mx = m[i];
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (ok[u]) mx = fmaxf(mx, d[i][u]);
      if (mx == m[i]) continue;  // also when nothing is valid yet (both -inf)
      const float c = exp2f(m[i] - mx);
      l[i] *= c;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[i][e] *= c;
      m[i] = mx;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      vec8<T> vv;
      *reinterpret_cast<int4*>(&vv) = buf[((st * U + u) * 2 + 1) * threads + threadIdx.x];
      float vf[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) vf[e] = to_f(vv.v[e]);  // zeros for keys past the end
#pragma unroll
      for (int i = 0; i < G; ++i) {
        const float w = ok[u] ? exp2f(d[i][u] - m[i]) : 0.0f;
        l[i] += w;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[i][e] += w * vf[e];
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the pipeline's memory becomes the subgroups' results
  float* sm_m = reinterpret_cast<float*>(smem);
  float* sm_l = sm_m + subs * G;
  float* sm_acc = sm_l + subs * G;  // [subs][G][D]
#pragma unroll
  for (int i = 0; i < G; ++i) {
    if (i >= hcount) continue;
    if (part == 0) {
      sm_m[me * G + i] = m[i];
      sm_l[me * G + i] = l[i];
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) sm_acc[(me * G + i) * D + part * 8 + e] = acc[i][e];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < hcount * D; idx += blockDim.x) {
    const int i = idx / D, dd = idx % D;
    float mx = -INFINITY;
    for (int j = 0; j < subs; ++j) mx = fmaxf(mx, sm_m[j * G + i]);
    float total_l = 0.0f, total = 0.0f;
    if (mx != -INFINITY)
      for (int j = 0; j < subs; ++j) {
        const float w = sm_m[j * G + i] == -INFINITY ? 0.0f : exp2f(sm_m[j * G + i] - mx);
        total_l += w * sm_l[j * G + i];
        total += w * sm_acc[(j * G + i) * D + dd];
      }
    const int64_t row = int64_t{t} * a.heads + h0 + i;
    if (num_splits == 1) {
      static_cast<T*>(a.out)[row * D + dd] = from_f<T>(total_l > 0.0f ? total / total_l : 0.0f);
    } else {
      const int64_t at = row * num_splits + split;
      scratch[at * D + dd] = total;
      if (dd == 0) {
        float* ml = scratch + int64_t{a.tokens} * a.heads * num_splits * D;
        ml[at * 2] = mx;
        ml[at * 2 + 1] = total_l;
      }
    }
  }
  if (num_splits == 1) return;
  // The last block of this (row, head group) to finish combines every split: weights 2^(m_z - max m)
  // on the partial sums and denominators (the counter is reset for the next call).
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    int* counter = counters + blockIdx.x * gridDim.y + blockIdx.y;
    last = atomicAdd(counter, 1) == num_splits - 1;
    if (last) *counter = 0;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  const float* ml = scratch + int64_t{a.tokens} * a.heads * num_splits * D;
  for (int idx = threadIdx.x; idx < hcount * D; idx += blockDim.x) {
    const int i = idx / D, dd = idx % D;
    const int64_t row = int64_t{t} * a.heads + h0 + i;
    float mx = -INFINITY;
    for (int z = 0; z < num_splits; ++z) mx = fmaxf(mx, __ldcg(ml + (row * num_splits + z) * 2));
    float total = 0.0f, total_l = 0.0f;
    if (mx != -INFINITY)
      for (int z = 0; z < num_splits; ++z) {
        const float mz = __ldcg(ml + (row * num_splits + z) * 2);
        const float w = mz == -INFINITY ? 0.0f : exp2f(mz - mx);
        total_l += w * __ldcg(ml + (row * num_splits + z) * 2 + 1);
        total += w * __ldcg(scratch + (row * num_splits + z) * D + dd);
      }
    static_cast<T*>(a.out)[row * D + dd] = from_f<T>(total_l > 0.0f ? total / total_l : 0.0f);
  }
}

// Query heads per block: the smallest of 1, 2, 4, 8 that holds the group (8 for larger groups).
int group_width(int group) { return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : max_group; }

template <class T, int D, int G, int U, int S>
cudaError_t launch_pipelined(dim3 grid, const attention_args& a, const split_plan& plan, float* scratch, int* counters,
                             cudaStream_t stream) {
  constexpr int bytes = rows_smem_bytes<D, G, U, S>();
  static_assert(bytes <= 99 * 1024, "more shared memory than an sm_86 block may have");
  auto kernel = rows_kernel<T, D, G, U, S>;
  if (bytes > 40 * 1024) {  // near the 48 KB default: the static flag of the combine counts too
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    if (e != cudaSuccess) return e;
  }
  kernel<<<grid, warps * 32, bytes, stream>>>(a, plan.num_splits, plan.keys_per_split, scratch, counters);
  return cudaSuccess;
}

// TROUPE_ATTN_DECODE (read at every call; for benchmarks): "v0" the previous kernel; "UxS" another
// pipeline shape for bf16, head_dim 128, groups of 1 and 4 (see the switch); unset: the default.
int decode_variant() {
  const char* v = std::getenv("TROUPE_ATTN_DECODE");
  if (v == nullptr) return 0;
  const std::string_view s(v);
  if (s == "v0") return 1;
  if (s == "4x2") return 2;
  if (s == "4x4") return 3;
  if (s == "2x4") return 4;
  if (s == "2x6") return 5;
  if (s == "8x2") return 6;
  if (s == "8x3") return 7;
  return 0;
}

template <class T, int D>
void launch_rows(const attention_args& a, const split_plan& plan, float* scratch, int* counters, cudaStream_t stream) {
  const int group = a.heads / a.kv_heads, width = group_width(group), chunks = (group + width - 1) / width;
  dim3 grid(static_cast<unsigned>(a.tokens), static_cast<unsigned>(a.kv_heads * chunks),
            static_cast<unsigned>(plan.num_splits));
  const int variant = decode_variant();
  if (variant == 1) {
    auto go = [&](auto kernel) {
      kernel<<<grid, warps * 32, 0, stream>>>(a, plan.num_splits, plan.keys_per_split, scratch, counters);
    };
    switch (width) {
      case 1: go(rows_kernel_v0<T, D, 1, false>); break;
      case 2: go(rows_kernel_v0<T, D, 2, false>); break;
      case 4: go(rows_kernel_v0<T, D, 4, false>); break;
      default: go(rows_kernel_v0<T, D, max_group, false>); break;
    }
    return;
  }
  if constexpr (std::is_same_v<T, bf16> && D == 128) {
    if (variant >= 2 && (width == 1 || width == 4)) {
      auto tuned = [&](auto u, auto st) {
        constexpr int U = decltype(u)::value, S = decltype(st)::value;
        if (width == 1) launch_pipelined<T, D, 1, U, S>(grid, a, plan, scratch, counters, stream);
        else launch_pipelined<T, D, 4, U, S>(grid, a, plan, scratch, counters, stream);
      };
      using std::integral_constant;
      switch (variant) {
        case 2: tuned(integral_constant<int, 4>{}, integral_constant<int, 2>{}); break;
        case 3: tuned(integral_constant<int, 4>{}, integral_constant<int, 4>{}); break;
        case 4: tuned(integral_constant<int, 2>{}, integral_constant<int, 4>{}); break;
        case 5: tuned(integral_constant<int, 2>{}, integral_constant<int, 6>{}); break;
        case 6: tuned(integral_constant<int, 8>{}, integral_constant<int, 2>{}); break;
        default: tuned(integral_constant<int, 8>{}, integral_constant<int, 3>{}); break;
      }
      return;
    }
  }
  switch (width) {
    case 1: launch_pipelined<T, D, 1, unroll, stages>(grid, a, plan, scratch, counters, stream); break;
    case 2: launch_pipelined<T, D, 2, unroll, stages>(grid, a, plan, scratch, counters, stream); break;
    case 4: launch_pipelined<T, D, 4, unroll, stages>(grid, a, plan, scratch, counters, stream); break;
    default: launch_pipelined<T, D, max_group, unroll, stages>(grid, a, plan, scratch, counters, stream); break;
  }
}

}  // namespace

bool rows_supported(int head_dim) {
  switch (head_dim) {
    case 8: case 16: case 32: case 64: case 128: case 256: return true;
    default: return false;
  }
}

split_plan plan_rows(const attention_args& a, int num_sms) {
  split_plan p;
  const int group = a.heads / a.kv_heads, width = group_width(group), chunks = (group + width - 1) / width;
  const int64_t base = int64_t{a.tokens} * a.kv_heads * chunks;
  // Blocks wanted per SM before splitting contexts (TROUPE_ATTN_BLOCKS_PER_SM, for benchmarks).
  const char* tuned = std::getenv("TROUPE_ATTN_BLOCKS_PER_SM");
  const int64_t per_sm = tuned != nullptr && std::atoi(tuned) > 0 ? std::atoi(tuned) : 4;
  const int64_t want = per_sm * num_sms;
  const int64_t by_length = (a.max_seq_len + min_keys_per_split - 1) / min_keys_per_split;
  int64_t splits = 1;
  if (base < want) splits = std::min<int64_t>(by_length, (want + base - 1) / base);
  p.num_splits = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(splits, 1024)));
  p.keys_per_split = (a.max_seq_len + p.num_splits - 1) / p.num_splits;
  if (p.keys_per_split < 1) p.keys_per_split = 1;
  p.scratch_floats = p.num_splits > 1 ? int64_t{a.tokens} * a.heads * p.num_splits * (a.head_dim + 2) : 0;
  p.counters = p.num_splits > 1 ? int64_t{a.tokens} * a.kv_heads * chunks : 0;
  return p;
}

cudaError_t attention_rows(dtype type, const attention_args& a, const split_plan& plan, float* scratch, int* counters,
                           cudaStream_t stream) {
  if (a.tokens <= 0) return cudaSuccess;
  if (!rows_supported(a.head_dim) || type == dtype::f32) return cudaErrorInvalidValue;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    if constexpr (!std::is_same_v<T, float>) {
      switch (a.head_dim) {
        case 8: launch_rows<T, 8>(a, plan, scratch, counters, stream); break;
        case 16: launch_rows<T, 16>(a, plan, scratch, counters, stream); break;
        case 32: launch_rows<T, 32>(a, plan, scratch, counters, stream); break;
        case 64: launch_rows<T, 64>(a, plan, scratch, counters, stream); break;
        case 128: launch_rows<T, 128>(a, plan, scratch, counters, stream); break;
        case 256: launch_rows<T, 256>(a, plan, scratch, counters, stream); break;
        default: break;
      }
    }
  });
  return cudaGetLastError();
}

}  // namespace troupe::kernels::cuda
