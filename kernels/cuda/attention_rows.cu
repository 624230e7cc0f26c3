// Paged attention, one query row at a time (decode; also any head_dim the prefill kernel lacks).
// A block serves one row, one KV head and up to eight of its query heads, so each key and value
// is loaded once for the whole group; a subgroup of head_dim / 8 lanes takes one key (16 bytes per
// lane). Keys and values stream through a cp.async pipeline in shared memory (each thread copies
// what it later reads, so no barrier), and long contexts are split over blocks whose partial
// results the last of them combines.
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/rope_kv.cuh"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace troupe::kernels::cuda {
namespace {

constexpr int warps = 4;
constexpr int max_group = 8;           // query heads per block at most (G, a template argument, is 1, 2, 4 or 8:
                                       // the smallest that holds the group, so MHA keeps few registers)
constexpr int min_keys_per_split = 32;
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

// This thread's 8 elements (from element i of a head_dim-wide head) rotated by RoPE at position
// pos, rounded to T: rope_write_kv's rotation (rotate_half_pair) on the pair (i, i +- half).
template <class T, int D>
__device__ __forceinline__ vec8<T> rope8(const T* head, int i, float pos, const float* inv_freq) {
  constexpr int half = D / 2;
  const bool first_half = i < half;
  const vec8<T> own = load8(head + i), other = load8(head + (first_half ? i + half : i - half));
  const int f0 = first_half ? i : i - half;
  vec8<T> out;
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    float first, second;
    rotate_half_pair(to_f(first_half ? own.v[e] : other.v[e]), to_f(first_half ? other.v[e] : own.v[e]), pos,
                     inv_freq[f0 + e], first, second);
    out.v[e] = from_f<T>(first_half ? first : second);
  }
  return out;
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
    rows_kernel(attention_args a, int num_splits, int keys_per_split, float* scratch, int* counters, bool heads_first) {
  constexpr int lanes_per_key = D / 8, keys_per_warp = 32 / lanes_per_key, subs = warps * keys_per_warp;
  constexpr int threads = warps * 32, tile = subs * U;
  extern __shared__ __align__(16) unsigned char smem[];
  int4* const buf = reinterpret_cast<int4*>(smem);
  // The grid is (rows, head slots, splits), or (head slots, rows, splits) when heads_first: the
  // blocks of one row then run together and read the same cache pages at once.
  // r: the block's row slot (scratch and counters); t: the query row it reads and writes. With a
  // sequence list (a mixed step's one-row sequences) slot r serves sequence seq_list[r].
  const int r = heads_first ? blockIdx.y : blockIdx.x, y = heads_first ? blockIdx.x : blockIdx.y;
  const int slots = heads_first ? gridDim.x : gridDim.y, split = blockIdx.z;
  const int group = a.heads / a.kv_heads, chunks = (group + G - 1) / G;
  const int g = y / chunks, chunk = y % chunks;
  const int h0 = g * group + chunk * G;
  const int hcount = min(G, group - chunk * G);
  const int s = a.seq_list != nullptr ? a.seq_list[r] : row_sequence(a, r);
  const int t = a.seq_list != nullptr ? a.query_start_loc[s] : r;
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

  const page_math pages(a.block_size);
  int page[U];
  auto fetch_pages = [&](int j) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int p = kbeg + j * tile + u * subs + me;
      page[u] = p < kend ? __ldg(table + pages.page(p)) : 0;
    }
  };
  // Where this thread's 16 bytes of key p (the u-th of its tile) are in the K and V caches.
  auto offset_of = [&](int u, int p) {
    return ((int64_t{page[u]} * a.block_size + pages.offset(p)) * a.kv_heads + g) * D + part * 8;
  };
  auto issue = [&](int j) {
    if (j < ntiles) {
      const int st = j % S;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int p = kbeg + j * tile + u * subs + me;
        const bool ok = p < kend;
        const int64_t off = ok ? offset_of(u, p) : 0;
        cp_async16(buf + ((st * U + u) * 2) * threads + threadIdx.x, kc + off, ok);
        cp_async16(buf + ((st * U + u) * 2 + 1) * threads + threadIdx.x, vc + off, ok);
      }
    }
    cp_async_commit();
  };
  // Before waiting for the kernels before it (programmatic dependent launch): the block table is the
  // step's input, and the keys and values before this row's position were written by earlier
  // steps, so the first tiles' pages are looked up and pulled into L2 while the kernel before ends
  // (the row's own key and value, which it writes, may be pulled too: L2 stays coherent).
#pragma unroll
  for (int j = 0; j < S - 1; ++j) {
    fetch_pages(j);
    if (j < ntiles)
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int p = kbeg + j * tile + u * subs + me;
        if (p < kend) {
          const int64_t off = offset_of(u, p);
          prefetch_l2(kc + off);
          prefetch_l2(vc + off);
        }
      }
  }
  wait_for_inputs();
  // With RoPE fused in (a.rope_qkv): this row's unrotated [q | k | v] heads. The block whose split
  // holds the row's own key (its last tile) writes that key, rotated, and its value; only this block
  // reads them (one block a KV head: the caller fuses only then), after a barrier. When that tile is
  // among the first ones the pipeline issues, the write goes first; else it overlaps their loads.
  const T* qkv_row = nullptr;
  bool writes = false;
  if constexpr (D >= 16) {
    if (a.rope_qkv != nullptr) {
      qkv_row = static_cast<const T*>(a.rope_qkv) + int64_t{t} * (a.heads + 2 * a.kv_heads) * D;
      const int32_t slot = a.rope_slots[t];
      writes = chunk == 0 && split == (pos - first) / keys_per_split && slot >= 0 && slot < a.rope_num_slots;
    }
  }
  auto write_own_key = [&] {
    if (threadIdx.x < D / 8) {
      const int64_t at = (int64_t{a.rope_slots[t]} * a.kv_heads + g) * D + threadIdx.x * 8;
      *reinterpret_cast<vec8<T>*>(static_cast<T*>(const_cast<void*>(a.k_cache)) + at) = rope8<T, D>(
          qkv_row + int64_t{a.heads + g} * D, threadIdx.x * 8, static_cast<float>(a.rope_positions[t]), a.rope_inv_freq);
      *reinterpret_cast<vec8<T>*>(static_cast<T*>(const_cast<void*>(a.v_cache)) + at) =
          load8(qkv_row + int64_t{a.heads + a.kv_heads + g} * D + threadIdx.x * 8);
    }
    __syncthreads();
  };
  const bool write_first = writes && ntiles <= S - 1;
  if constexpr (D >= 16)
    if (write_first) write_own_key();
#pragma unroll
  for (int j = 0; j < S - 1; ++j) {
    fetch_pages(j);
    issue(j);
  }
  if constexpr (D >= 16)
    if (writes && !write_first) write_own_key();
  fetch_pages(S - 1);

  float qf[G][8], acc[G][8], m[G], l[G];
  const float qscale = a.scale * log2e;  // scores in the base-2 domain
#pragma unroll
  for (int i = 0; i < G; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
    vec8<T> qv{};
    if (i < hcount) {
      bool rotated = false;
      if constexpr (D >= 16)
        if (qkv_row != nullptr) {
          qv = rope8<T, D>(qkv_row + int64_t{h0 + i} * D, part * 8, static_cast<float>(a.rope_positions[t]),
                           a.rope_inv_freq);
          rotated = true;
        }
      if (!rotated) qv = load8(static_cast<const T*>(a.q) + (int64_t{t} * a.heads + h0 + i) * D + part * 8);
    }
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
    const int64_t row = int64_t{r} * a.heads + h0 + i;
    if (num_splits == 1) {
      static_cast<T*>(a.out)[(int64_t{t} * a.heads + h0 + i) * D + dd] =
          from_f<T>(total_l > 0.0f ? total / total_l : 0.0f);
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
    int* counter = counters + r * slots + y;
    last = atomicAdd(counter, 1) == num_splits - 1;
    if (last) *counter = 0;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  // The weight of each split (2^(m_z - max m), in shared memory: at most 8 heads x 1,024 splits, which
  // the pipeline's 32 KB hold) and each head's denominator first, a warp per head; then every output
  // element sums its splits' partial sums with several loads in flight. A chain of dependent loads
  // per split would make the combine a long tail for the short contexts of small batches.
  const float* ml = scratch + int64_t{a.tokens} * a.heads * num_splits * D;
  float* weight = reinterpret_cast<float*>(smem);  // [hcount][num_splits]
  __shared__ float inv_l[max_group];
  for (int i = warp; i < hcount; i += warps) {
    const int64_t row = int64_t{r} * a.heads + h0 + i;
    float mx = -INFINITY;
    for (int z = lane; z < num_splits; z += 32) {
      const float mz = __ldcg(ml + (row * num_splits + z) * 2);
      weight[i * num_splits + z] = mz;
      mx = fmaxf(mx, mz);
    }
    mx = warp_max(mx);
    float total_l = 0.0f;
    for (int z = lane; z < num_splits; z += 32) {
      const float mz = weight[i * num_splits + z];
      const float w = mz == -INFINITY ? 0.0f : exp2f(mz - mx);
      weight[i * num_splits + z] = w;
      total_l += w * __ldcg(ml + (row * num_splits + z) * 2 + 1);
    }
    total_l = warp_sum(total_l);
    if (lane == 0) inv_l[i] = total_l > 0.0f ? 1.0f / total_l : 0.0f;
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < hcount * D; idx += blockDim.x) {
    const int i = idx / D, dd = idx % D;
    const int64_t row = int64_t{r} * a.heads + h0 + i;
    const float* part_sums = scratch + row * num_splits * D + dd;
    float total = 0.0f;
#pragma unroll 8
    for (int z = 0; z < num_splits; ++z) total += weight[i * num_splits + z] * __ldcg(part_sums + int64_t{z} * D);
    static_cast<T*>(a.out)[(int64_t{t} * a.heads + h0 + i) * D + dd] = from_f<T>(total * inv_l[i]);
  }
}

// Query heads per block: the smallest of 1, 2, 4, 8 that holds the group (8 for larger groups).
int group_width(int group) { return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : max_group; }

template <class T, int D, int G, int U, int S>
cudaError_t launch_pipelined(const attention_args& a, const split_plan& plan, float* scratch, int* counters, int slots,
                             cudaStream_t stream) {
  constexpr int bytes = rows_smem_bytes<D, G, U, S>();
  static_assert(bytes <= 99 * 1024, "more shared memory than an sm_86 block may have");
  auto kernel = rows_kernel<T, D, G, U, S>;
  // Near the 48 KB default the combine's static flag counts too. A failure here shows as the launch's.
  if (bytes > 40 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  // Head slots first (blocks of one row run together and read the same cache pages at once: about
  // 1-3% on an H100 for MHA), unless the rows exceed a grid's y dimension.
  const bool heads_first = a.tokens <= 65535;
  const auto rows = static_cast<unsigned>(a.tokens), y = static_cast<unsigned>(slots);
  const dim3 grid(heads_first ? y : rows, heads_first ? rows : y, static_cast<unsigned>(plan.num_splits));
  return launch(kernel, grid, warps * 32, bytes, stream, a, plan.num_splits, plan.keys_per_split, scratch, counters,
                heads_first);
}

// The pipeline's shape by group width. One query head: 4 keys per subgroup and stage, 3 stages (48
// registers, 48 KB). Several: 2 keys and 4 stages (128 registers for 4 heads, 32 KB), which leaves
// room for 4 blocks per SM: on an H100 GQA 32/8 ran at 1.24-2.42 TB/s this way against 1.02-2.17
// with 4 keys and 3 stages, and 1.46-1.75 at 256 sequences when split into blocks of 2 heads.
template <class T, int D>
cudaError_t launch_rows(const attention_args& a, const split_plan& plan, float* scratch, int* counters,
                        cudaStream_t stream) {
  const int group = a.heads / a.kv_heads, width = group_width(group);
  const int slots = a.kv_heads * ((group + width - 1) / width);
  switch (width) {
    case 1: return launch_pipelined<T, D, 1, 4, 3>(a, plan, scratch, counters, slots, stream);
    case 2: return launch_pipelined<T, D, 2, 2, 4>(a, plan, scratch, counters, slots, stream);
    case 4: return launch_pipelined<T, D, 4, 2, 4>(a, plan, scratch, counters, slots, stream);
    default: return launch_pipelined<T, D, max_group, 2, 4>(a, plan, scratch, counters, slots, stream);
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
  const int64_t want = rows_split_below(num_sms);
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
  cudaError_t err = cudaSuccess;
  dispatch_type(type, [&](auto e) {
    using T = decltype(e);
    if constexpr (!std::is_same_v<T, float>) {
      switch (a.head_dim) {
        case 8: err = launch_rows<T, 8>(a, plan, scratch, counters, stream); break;
        case 16: err = launch_rows<T, 16>(a, plan, scratch, counters, stream); break;
        case 32: err = launch_rows<T, 32>(a, plan, scratch, counters, stream); break;
        case 64: err = launch_rows<T, 64>(a, plan, scratch, counters, stream); break;
        case 128: err = launch_rows<T, 128>(a, plan, scratch, counters, stream); break;
        case 256: err = launch_rows<T, 256>(a, plan, scratch, counters, stream); break;
        default: break;
      }
    }
  });
  return err;
}

}  // namespace troupe::kernels::cuda
