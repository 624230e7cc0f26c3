// The CPU backend's RoPE with the paged KV write, and causal paged attention with GQA.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_backend.hpp"
#include "kernels/cpu/parallel.hpp"
#include "kernels/cpu/vec.hpp"

namespace troupe::kernels::cpu {
namespace {

// Rotate-half RoPE of one head: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin).
void rotate_head(float* x, const float* cos_t, const float* sin_t, int64_t half) {
  for (int64_t i = 0; i < half; ++i) {
    float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * cos_t[i] - x2 * sin_t[i];
    x[i + half] = x2 * cos_t[i] + x1 * sin_t[i];
  }
}

}  // namespace

void cpu_backend::rope_write_kv(const tensor& qkv, tensor& q, const index_tensor& positions, const tensor& inv_freq,
                                const index_tensor& slot_mapping, tensor& k_cache, tensor& v_cache) {
  const int64_t tokens = q.dims[0], heads = q.dims[1], head_dim = q.dims[2];
  const int64_t kv_heads = k_cache.dims[2], half = head_dim / 2;
  const int64_t num_slots = k_cache.dims[0] * k_cache.dims[1];
  TROUPE_CHECK(q.dims.rank() == 3 && qkv.dims.rank() == 3 && qkv.dims[0] == tokens);
  TROUPE_CHECK(qkv.dims[1] == heads + 2 * kv_heads && qkv.dims[2] == head_dim && inv_freq.numel() == half);
  TROUPE_CHECK(positions.numel() == tokens && slot_mapping.numel() == tokens);
  TROUPE_CHECK(k_cache.dims.rank() == 4 && k_cache.dims[3] == head_dim && v_cache.dims == k_cache.dims);
  std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
  const float* freq = inv_freq.as<float>();
  const int64_t q_row = heads * head_dim, kv_row = kv_heads * head_dim;
  for (int64_t t = 0; t < tokens; ++t) {
    // As Hugging Face: the angle is a float32 product, its cosine and sine taken in float32.
    float pos = static_cast<float>(positions.data[t]);
    for (int64_t i = 0; i < half; ++i) {
      float angle = pos * freq[i];
      cos_t[static_cast<size_t>(i)] = std::cos(angle);
      sin_t[static_cast<size_t>(i)] = std::sin(angle);
    }
    const float* row = qkv.as<float>() + t * (q_row + 2 * kv_row);
    float* qt = q.as<float>() + t * q_row;
    std::memcpy(qt, row, static_cast<size_t>(q_row) * sizeof(float));
    for (int64_t h = 0; h < heads; ++h) rotate_head(qt + h * head_dim, cos_t.data(), sin_t.data(), half);
    int32_t slot = slot_mapping.data[t];
    if (slot < 0) continue;
    TROUPE_CHECK(slot < num_slots);
    float* kc = k_cache.as<float>() + slot * kv_row;
    std::memcpy(kc, row + q_row, static_cast<size_t>(kv_row) * sizeof(float));
    for (int64_t h = 0; h < kv_heads; ++h) rotate_head(kc + h * head_dim, cos_t.data(), sin_t.data(), half);
    std::memcpy(v_cache.as<float>() + slot * kv_row, row + q_row + kv_row, static_cast<size_t>(kv_row) * sizeof(float));
  }
}

namespace {

// Where the keys of every sequence of a batch are, computed once per call.
struct key_layout {
  int64_t heads, kv_heads, head_dim, kv_row;
  std::vector<int64_t> base;  // per sequence, its first entry in rows
  std::vector<int64_t> rows;  // per sequence and position, the key's float offset in the cache
};

// Queries from this many rows of one sequence on go through matrix products (prefill) when heads are
// at least blas_min_head_dim wide. Smaller heads always take the row loop, which computes a row the
// same way however the sequence was chunked or batched (small models stay exactly batch-invariant).
constexpr int64_t blas_min_rows = 16;
constexpr int64_t blas_min_head_dim = 64;
// Query rows per matrix product, bounding the score buffer.
constexpr int64_t blas_tile_rows = 256;

// softmax(scale * s) over [first, last] of a row of scores, zero elsewhere in [0, n).
void masked_softmax(float* s, int64_t n, int64_t first, int64_t last) {
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t j = first; j <= last; ++j) top = std::max(top, s[j]);
  float sum = 0.0f;
  for (int64_t j = first; j <= last; ++j) sum += (s[j] = std::exp(s[j] - top));
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < n; ++j) s[j] = (j >= first && j <= last) ? s[j] * inv : 0.0f;
}

// The rows of one sequence in prefill, head by head: scores = Q Kᵀ and out = P V as matrix
// products over the keys and values gathered from the cache, with a masked softmax between.
void attend_with_blas(const float* q, float* out, int64_t q_len, int64_t len, const int64_t* rows,
                      const float* k_cache, const float* v_cache, const key_layout& kl,
                      const attention_batch& batch, int threads) {
  const int64_t dim = kl.head_dim, group = kl.heads / kl.kv_heads, stride = kl.heads * dim;
  const int64_t start = len - q_len;  // position of the first query row
  std::vector<float> keys(static_cast<size_t>(len * dim)), values(keys.size());
  std::vector<float> scores(static_cast<size_t>(std::min(q_len, blas_tile_rows) * len));
  for (int64_t g = 0; g < kl.kv_heads; ++g) {
    for (int64_t p = 0; p < len; ++p) {
      std::memcpy(&keys[static_cast<size_t>(p * dim)], k_cache + rows[p] + g * dim, dim * sizeof(float));
      std::memcpy(&values[static_cast<size_t>(p * dim)], v_cache + rows[p] + g * dim, dim * sizeof(float));
    }
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      for (int64_t r0 = 0; r0 < q_len; r0 += blas_tile_rows) {
        const int64_t m = std::min(blas_tile_rows, q_len - r0);
        const int64_t k_end = start + r0 + m;  // one past the last key any row of the tile sees
        const int64_t k0 = batch.sliding_window > 0 ? std::max<int64_t>(0, start + r0 - batch.sliding_window + 1) : 0;
        const int64_t n = k_end - k0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(dim), batch.scale,
                    q + r0 * stride + h * dim, int(stride), &keys[static_cast<size_t>(k0 * dim)], int(dim),
                    0.0f, scores.data(), int(n));
        parallel_for(m, threads, n * 16, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            const int64_t pos = start + r0 + i;
            const int64_t first = batch.sliding_window > 0 ? std::max<int64_t>(0, pos - batch.sliding_window + 1) : 0;
            masked_softmax(scores.data() + i * n, n, first - k0, pos - k0);
          }
        });
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(dim), int(n), 1.0f, scores.data(),
                    int(n), &values[static_cast<size_t>(k0 * dim)], int(dim), 0.0f, out + r0 * stride + h * dim,
                    int(stride));
      }
    }
  }
}

// One query row and head, by loops over the keys (decode and short chunks).
void attend_row(const float* qh, float* oh, int64_t pos, const int64_t* rows, const float* keys,
                const float* values, const key_layout& kl, const attention_batch& batch, float* weights) {
  const int64_t first = batch.sliding_window > 0 ? std::max<int64_t>(0, pos - batch.sliding_window + 1) : 0;
  const int64_t count = pos - first + 1, dim = kl.head_dim;
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < count; ++j) {
    weights[j] = dot(qh, keys + rows[first + j], dim) * batch.scale;
    top = std::max(top, weights[j]);
  }
  float sum = 0.0f;
  for (int64_t j = 0; j < count; ++j) sum += (weights[j] = std::exp(weights[j] - top));
  std::fill(oh, oh + dim, 0.0f);
  for (int64_t j = 0; j < count; ++j) axpy(weights[j], values + rows[first + j], oh, dim);
  const float inv = 1.0f / sum;
  for (int64_t d = 0; d < dim; ++d) oh[d] *= inv;
}

}  // namespace

void cpu_backend::paged_attention(const tensor& q, const tensor& k_cache, const tensor& v_cache,
                                  const attention_batch& batch, tensor& out) {
  const int64_t tokens = q.dims[0], heads = q.dims[1], head_dim = q.dims[2];
  const int64_t block_size = k_cache.dims[1], kv_heads = k_cache.dims[2];
  const int64_t num_seqs = batch.seq_lens.numel(), max_blocks = batch.block_tables.dims[1];
  TROUPE_CHECK(q.dims.rank() == 3 && k_cache.dims.rank() == 4 && k_cache.dims[3] == head_dim);
  TROUPE_CHECK(kv_heads > 0 && heads % kv_heads == 0 && out.numel() == q.numel());
  TROUPE_CHECK(v_cache.dims == k_cache.dims && batch.query_start_loc.numel() == num_seqs + 1);
  const int32_t* qsl = batch.query_start_loc.data;
  TROUPE_CHECK(qsl[0] == 0 && qsl[num_seqs] == tokens);
  key_layout kl{heads, kv_heads, head_dim, kv_heads * head_dim, {}, {}};

  // Key offsets of every sequence; long query runs go through matrix products, the other rows
  // (with their sequence) are collected for the loop below.
  std::vector<std::pair<int64_t, int32_t>> short_rows;
  int32_t longest = 1;
  for (int32_t s = 0; s < num_seqs; ++s) {
    const int32_t len = batch.seq_lens.data[s], q_len = qsl[s + 1] - qsl[s];
    TROUPE_CHECK(q_len >= 0 && q_len <= len && len <= max_blocks * block_size);
    longest = std::max(longest, len);
    kl.base.push_back(static_cast<int64_t>(kl.rows.size()));
    for (int64_t p = 0; p < len; ++p) {
      int32_t block = batch.block_tables.data[s * max_blocks + p / block_size];
      TROUPE_CHECK(block >= 0 && block < k_cache.dims[0]);
      kl.rows.push_back((int64_t{block} * block_size + p % block_size) * kl.kv_row);
    }
    if (q_len < blas_min_rows || head_dim < blas_min_head_dim)
      for (int32_t t = qsl[s]; t < qsl[s + 1]; ++t) short_rows.emplace_back(t, s);
  }
  for (int32_t s = 0; s < num_seqs; ++s) {
    const int64_t q_len = qsl[s + 1] - qsl[s];
    if (q_len < blas_min_rows || head_dim < blas_min_head_dim) continue;
    attend_with_blas(q.as<float>() + qsl[s] * heads * head_dim, out.as<float>() + qsl[s] * heads * head_dim,
                     q_len, batch.seq_lens.data[s], kl.rows.data() + kl.base[static_cast<size_t>(s)],
                     k_cache.as<float>(), v_cache.as<float>(), kl, batch, threads_);
  }
  // One work item per (short row, head).
  auto items = [&](int64_t begin, int64_t end) {
    std::vector<float> weights(static_cast<size_t>(longest));
    for (int64_t item = begin; item < end; ++item) {
      const auto [t, s] = short_rows[static_cast<size_t>(item / heads)];
      const int64_t h = item % heads, group = heads / kv_heads;
      const int64_t pos = batch.seq_lens.data[s] - (qsl[s + 1] - qsl[s]) + (t - qsl[s]);
      attend_row(q.as<float>() + (t * heads + h) * head_dim, out.as<float>() + (t * heads + h) * head_dim, pos,
                 kl.rows.data() + kl.base[static_cast<size_t>(s)], k_cache.as<float>() + (h / group) * head_dim,
                 v_cache.as<float>() + (h / group) * head_dim, kl, batch, weights.data());
    }
  };
  parallel_for(static_cast<int64_t>(short_rows.size()) * heads, threads_, int64_t{longest} * head_dim * 4, items);
}

}  // namespace troupe::kernels::cpu
