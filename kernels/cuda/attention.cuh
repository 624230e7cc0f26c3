// Causal paged attention: a per-row kernel split over long contexts (decode; head_dim 8, 16, 32, 64,
// 128 or 256) and a tensor-core flash-attention kernel for prefill (head_dim 64, 128).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.hpp"

namespace troupe::kernels::cuda {

/// Device pointers and sizes of one paged_attention call (see kernels::attention_batch).
struct attention_args {
  const void* q = nullptr;        ///< [tokens, heads, head_dim]
  const void* k_cache = nullptr;  ///< [num_blocks * block_size, kv_heads, head_dim]
  const void* v_cache = nullptr;
  void* out = nullptr;            ///< [tokens, heads, head_dim]
  const int32_t* query_start_loc = nullptr;
  const int32_t* seq_lens = nullptr;
  const int32_t* block_tables = nullptr;
  /// Optional: the kernel serves only these sequences, num_seqs of them for the prefill kernel; for
  /// the per-row kernel each has exactly one new row and `tokens` is their count (query rows are
  /// still found through query_start_loc, so q and out keep the whole step's layout).
  const int32_t* seq_list = nullptr;
  int num_seqs = 0, tokens = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int block_size = 0, max_blocks = 0, max_query_len = 0, max_seq_len = 0, sliding_window = 0;
  float scale = 1.0f;
  /// Optional, for the per-row kernel on decode rows (one KV head's query heads in one block): RoPE
  /// and the K/V write of these rows done here instead of by rope_write_kv. q is then read from
  /// rope_qkv's rows ([heads | kv_heads | kv_heads] x head_dim) and rotated as rope_write_kv rotates
  /// it (the same float math, rounded to the cache type), and the block whose split holds a row's own
  /// position writes its rotated key and its value to slot rope_slots[t] (none where it is negative)
  /// before it reads them back.
  const void* rope_qkv = nullptr;
  const int32_t* rope_positions = nullptr;
  const int32_t* rope_slots = nullptr;
  const float* rope_inv_freq = nullptr;
  int64_t rope_num_slots = 0;
};

#ifdef __CUDACC__
/// Where key position p of a sequence sits in the paged cache: its page (an index into the block
/// table) and its place in that page, by shift and mask when the block size is a power of two (the
/// usual 16), else by division.
struct page_math {
  int size, shift;
  bool pow2;
  __device__ explicit page_math(int block_size)
      : size(block_size), shift(0), pow2((block_size & (block_size - 1)) == 0) {
    while ((1 << shift) < block_size) ++shift;  // log2 for a power of two (once a block)
  }
  __device__ int page(int p) const { return pow2 ? p >> shift : p / size; }
  __device__ int offset(int p) const { return pow2 ? p & (size - 1) : p % size; }
};
#endif

/// How the per-row kernel splits each row's keys: num_splits ranges of keys_per_split keys, and
/// the float32 scratch (partial sums, maxima and denominators) that needs when num_splits > 1.
struct split_plan {
  int num_splits = 1;
  int keys_per_split = 0;
  int64_t scratch_floats = 0;
  int64_t counters = 0;  ///< zeroed ints the kernel needs when num_splits > 1 (and leaves zeroed)
};

bool rows_supported(int head_dim);
/// Blocks (rows x KV heads x head chunks) below which plan_rows splits contexts over more blocks.
inline int64_t rows_split_below(int num_sms) { return 4LL * num_sms; }
split_plan plan_rows(const attention_args& a, int num_sms);
/// The per-row kernel: one block per (row, KV head, group of up to 8 query heads, split); the keys
/// and values of a KV head are loaded once for all its query heads, streamed through a cp.async
/// pipeline in shared memory (at most 48 KB a block); with several splits, the last block of a row
/// to finish combines them. The launch depends only on the host-known sizes and bounds (graphs may
/// record it); splits past a sequence's end load nothing. scratch: plan.scratch_floats; counters:
/// plan.counters ints, zero before the call and zero after it.
cudaError_t attention_rows(dtype type, const attention_args& a, const split_plan& plan, float* scratch, int* counters,
                           cudaStream_t stream);

bool prefill_supported(dtype type, int head_dim);
/// The prefill kernel: one block of four warps per (64 query rows of a sequence, head), mma.sync
/// tensor cores, online softmax over 64-key tiles gathered from the paged cache.
cudaError_t attention_prefill(dtype type, const attention_args& a, cudaStream_t stream);

}  // namespace troupe::kernels::cuda
