// The CPU backend's RoPE with the paged KV write, and causal paged attention with GQA.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_backend.hpp"
#include "kernels/cpu/parallel.hpp"

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

// Eight independent partial sums, so the compiler can keep them in one vector register.
float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = 0.0f;
  for (; i < n; ++i) s += a[i] * b[i];
  for (float x : acc) s += x;
  return s;
}

// y += w * x, in lanes of eight like dot.
void axpy(float w, const float* __restrict x, float* __restrict y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) y[i + j] += w * x[i + j];
  for (; i < n; ++i) y[i] += w * x[i];
}

}  // namespace

void cpu_backend::rope_write_kv(tensor& q, tensor& k, const tensor& v, const index_tensor& positions,
                                const tensor& inv_freq, const index_tensor& slot_mapping,
                                tensor& k_cache, tensor& v_cache) {
  const int64_t tokens = q.dims[0], heads = q.dims[1], head_dim = q.dims[2];
  const int64_t kv_heads = k.dims[1], half = head_dim / 2;
  const int64_t num_slots = k_cache.dims[0] * k_cache.dims[1];
  TROUPE_CHECK(q.dims.rank() == 3 && k.dims.rank() == 3 && k.dims[0] == tokens);
  TROUPE_CHECK(k.dims[2] == head_dim && v.numel() == k.numel() && inv_freq.numel() == half);
  TROUPE_CHECK(positions.numel() == tokens && slot_mapping.numel() == tokens);
  TROUPE_CHECK(k_cache.dims.rank() == 4 && k_cache.dims[2] == kv_heads && k_cache.dims[3] == head_dim);
  TROUPE_CHECK(v_cache.dims == k_cache.dims);
  std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
  const float* freq = inv_freq.as<float>();
  const int64_t kv_row = kv_heads * head_dim;
  for (int64_t t = 0; t < tokens; ++t) {
    // As Hugging Face: the angle is a float32 product, its cosine and sine taken in float32.
    float pos = static_cast<float>(positions.data[t]);
    for (int64_t i = 0; i < half; ++i) {
      float angle = pos * freq[i];
      cos_t[static_cast<size_t>(i)] = std::cos(angle);
      sin_t[static_cast<size_t>(i)] = std::sin(angle);
    }
    float* qt = q.as<float>() + t * heads * head_dim;
    for (int64_t h = 0; h < heads; ++h) rotate_head(qt + h * head_dim, cos_t.data(), sin_t.data(), half);
    float* kt = k.as<float>() + t * kv_row;
    for (int64_t h = 0; h < kv_heads; ++h)
      rotate_head(kt + h * head_dim, cos_t.data(), sin_t.data(), half);
    int32_t slot = slot_mapping.data[t];
    if (slot < 0) continue;
    TROUPE_CHECK(slot < num_slots);
    std::memcpy(k_cache.as<float>() + slot * kv_row, kt, kv_row * sizeof(float));
    std::memcpy(v_cache.as<float>() + slot * kv_row, v.as<float>() + t * kv_row, kv_row * sizeof(float));
  }
}

void cpu_backend::paged_attention(const tensor& q, const tensor& k_cache, const tensor& v_cache,
                                  const attention_batch& batch, tensor& out) {
  const int64_t tokens = q.dims[0], heads = q.dims[1], head_dim = q.dims[2];
  const int64_t block_size = k_cache.dims[1], kv_heads = k_cache.dims[2];
  const int64_t num_seqs = batch.seq_lens.numel(), max_blocks = batch.block_tables.dims[1];
  TROUPE_CHECK(q.dims.rank() == 3 && k_cache.dims.rank() == 4 && k_cache.dims[3] == head_dim);
  TROUPE_CHECK(kv_heads > 0 && heads % kv_heads == 0 && out.numel() == q.numel());
  TROUPE_CHECK(batch.query_start_loc.numel() == num_seqs + 1);
  const int32_t* qsl = batch.query_start_loc.data;
  TROUPE_CHECK(qsl[0] == 0 && qsl[num_seqs] == tokens);
  const int64_t group = heads / kv_heads, kv_row = kv_heads * head_dim;

  // The sequence of every token row, and the cache row offset of every key of every sequence.
  std::vector<int32_t> seq_of(static_cast<size_t>(tokens));
  std::vector<int64_t> key_base(static_cast<size_t>(num_seqs)), key_rows;
  int32_t longest = 1;
  for (int32_t s = 0; s < num_seqs; ++s) {
    const int32_t len = batch.seq_lens.data[s];
    TROUPE_CHECK(qsl[s] <= qsl[s + 1] && qsl[s + 1] - qsl[s] <= len && len <= max_blocks * block_size);
    longest = std::max(longest, len);
    key_base[static_cast<size_t>(s)] = static_cast<int64_t>(key_rows.size());
    for (int64_t p = 0; p < len; ++p) {
      int32_t block = batch.block_tables.data[s * max_blocks + p / block_size];
      TROUPE_CHECK(block >= 0 && block < k_cache.dims[0]);
      key_rows.push_back((int64_t{block} * block_size + p % block_size) * kv_row);
    }
    for (int32_t t = qsl[s]; t < qsl[s + 1]; ++t) seq_of[static_cast<size_t>(t)] = s;
  }

  // One work item per (token row, head): a softmax over the keys that row may see.
  auto items = [&](int64_t begin, int64_t end) {
    std::vector<float> weights(static_cast<size_t>(longest));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t t = item / heads, h = item % heads;
      const int32_t s = seq_of[static_cast<size_t>(t)];
      const int64_t* rows = key_rows.data() + key_base[static_cast<size_t>(s)];
      const int64_t pos = batch.seq_lens.data[s] - (qsl[s + 1] - qsl[s]) + (t - qsl[s]);
      const int64_t first = batch.sliding_window > 0 ? std::max<int64_t>(0, pos - batch.sliding_window + 1) : 0;
      const int64_t count = pos - first + 1;
      const float* qh = q.as<float>() + (t * heads + h) * head_dim;
      const float* keys = k_cache.as<float>() + (h / group) * head_dim;
      const float* values = v_cache.as<float>() + (h / group) * head_dim;
      float top = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < count; ++j) {
        float sc = dot(qh, keys + rows[first + j], head_dim) * batch.scale;
        weights[static_cast<size_t>(j)] = sc;
        top = std::max(top, sc);
      }
      float sum = 0.0f;
      for (int64_t j = 0; j < count; ++j) {
        float w = std::exp(weights[static_cast<size_t>(j)] - top);
        weights[static_cast<size_t>(j)] = w;
        sum += w;
      }
      float* oh = out.as<float>() + (t * heads + h) * head_dim;
      std::fill(oh, oh + head_dim, 0.0f);
      for (int64_t j = 0; j < count; ++j) {
        axpy(weights[static_cast<size_t>(j)], values + rows[first + j], oh, head_dim);
      }
      const float inv = 1.0f / sum;
      for (int64_t d = 0; d < head_dim; ++d) oh[d] *= inv;
    }
  };
  parallel_for(tokens * heads, threads_, int64_t{longest} * head_dim * 4, items);
}

}  // namespace troupe::kernels::cpu
