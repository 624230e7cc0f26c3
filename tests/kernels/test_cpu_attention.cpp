// The CPU backend's RoPE + paged KV write and paged attention against dense scalar loops.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/backend.hpp"

using namespace troupe::kernels;

namespace {

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<float> download(backend& be, const tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  be.copy_to_host(t, v);
  return v;
}

tensor upload(backend& be, const std::vector<float>& values, shape dims) {
  tensor t = be.alloc(dims);
  be.copy_to_device(values, t);
  return t;
}

struct seq_case {
  int32_t context;  // tokens in all, including the new ones
  int32_t fresh;    // new tokens (query rows)
};

// Paged attention for a batch of sequences whose dense keys/values are scattered over shuffled
// blocks, compared with a dense double-precision causal softmax.
void check_attention(const std::vector<seq_case>& seqs, int64_t heads, int64_t kv_heads, int64_t dim,
                     int64_t block_size, int32_t window, uint32_t seed) {
  auto be = make_cpu_backend(2);
  std::mt19937 rng(seed);
  int64_t max_blocks = 0, total_blocks = 0, tokens = 0;
  for (auto s : seqs) {
    int64_t b = (s.context + block_size - 1) / block_size;
    max_blocks = std::max(max_blocks, b);
    total_blocks += b;
    tokens += s.fresh;
  }
  total_blocks += 3;  // unused blocks too
  std::vector<int32_t> pool(static_cast<size_t>(total_blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);

  const int64_t row = kv_heads * dim;
  std::vector<float> kc(size_t(total_blocks * block_size * row)), vc(kc.size());
  for (auto& x : kc) x = std::nanf("");  // unwritten slots must never be read
  for (auto& x : vc) x = std::nanf("");
  std::vector<std::vector<float>> dense_k, dense_v;
  std::vector<int32_t> tables(size_t(seqs.size() * max_blocks), 0), qsl = {0}, lens;
  size_t next = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    int64_t nb = (seqs[s].context + block_size - 1) / block_size;
    for (int64_t b = 0; b < nb; ++b) tables[s * size_t(max_blocks) + size_t(b)] = pool[next++];
    dense_k.push_back(random_values(size_t(seqs[s].context * row), rng));
    dense_v.push_back(random_values(size_t(seqs[s].context * row), rng));
    for (int64_t p = 0; p < seqs[s].context; ++p) {
      int64_t slot = tables[s * size_t(max_blocks) + size_t(p / block_size)] * block_size + p % block_size;
      std::copy_n(dense_k[s].begin() + p * row, row, kc.begin() + slot * row);
      std::copy_n(dense_v[s].begin() + p * row, row, vc.begin() + slot * row);
    }
    qsl.push_back(qsl.back() + seqs[s].fresh);
    lens.push_back(seqs[s].context);
  }
  auto qv = random_values(size_t(tokens * heads * dim), rng);
  shape cache_dims{total_blocks, block_size, kv_heads, dim};
  tensor q = upload(*be, qv, {tokens, heads, dim}), out = be->alloc({tokens, heads, dim});
  tensor k_cache = upload(*be, kc, cache_dims), v_cache = upload(*be, vc, cache_dims);
  attention_batch batch;
  batch.query_start_loc = be->upload_indices(qsl, {int64_t(seqs.size()) + 1});
  batch.seq_lens = be->upload_indices(lens, {int64_t(seqs.size())});
  batch.block_tables = be->upload_indices(tables, {int64_t(seqs.size()), max_blocks});
  batch.sliding_window = window;
  batch.scale = float(1.0 / std::sqrt(double(dim)));
  be->paged_attention(q, k_cache, v_cache, batch, out);
  auto got = download(*be, out);

  const int64_t group = heads / kv_heads;
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int32_t j = 0; j < seqs[s].fresh; ++j) {
      int64_t t = qsl[s] + j, pos = seqs[s].context - seqs[s].fresh + j;
      int64_t first = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
      for (int64_t h = 0; h < heads; ++h) {
        const float* qh = qv.data() + (t * heads + h) * dim;
        int64_t kvh = h / group;
        std::vector<double> w;
        double top = -1e300;
        for (int64_t p = first; p <= pos; ++p) {
          double sc = 0;
          for (int64_t d = 0; d < dim; ++d) sc += double(qh[d]) * dense_k[s][size_t(p * row + kvh * dim + d)];
          w.push_back(sc / std::sqrt(double(dim)));
          top = std::max(top, w.back());
        }
        double sum = 0;
        for (auto& x : w) sum += (x = std::exp(x - top));
        for (int64_t d = 0; d < dim; ++d) {
          double o = 0;
          for (int64_t p = first; p <= pos; ++p) o += w[size_t(p - first)] * dense_v[s][size_t(p * row + kvh * dim + d)];
          INFO("seq " << s << " row " << j << " head " << h << " dim " << d);
          REQUIRE(std::abs(got[size_t((t * heads + h) * dim + d)] - o / sum) < 2e-5);
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("paged attention: one sequence across block boundaries") {
  for (int32_t len : {1, 15, 16, 17, 33}) {
    INFO("length " << len);
    check_attention({{len, len}}, 4, 4, 8, 16, 0, uint32_t(len));
    check_attention({{len, 1}}, 4, 4, 8, 16, 0, uint32_t(len) + 100);
  }
}

TEST_CASE("paged attention: grouped-query ratios and head sizes") {
  for (int64_t ratio : {1, 2, 4, 8}) {
    for (int64_t dim : {8, 64, 128}) {
      INFO("ratio " << ratio << " head_dim " << dim);
      check_attention({{19, 19}, {40, 1}}, 8, 8 / ratio, dim, 16, 0, uint32_t(ratio * 1000 + dim));
    }
  }
}

TEST_CASE("paged attention: a mixed batch of prefill, chunked prefill over a prefix, and decode") {
  std::vector<seq_case> batch = {{17, 17}, {50, 1}, {37, 5}, {1, 1}, {64, 16}};
  for (int64_t bs : {1, 4, 16, 32}) {
    INFO("block size " << bs);
    check_attention(batch, 6, 2, 16, bs, 0, uint32_t(bs));
  }
}

TEST_CASE("paged attention: sliding window sees only keys after position - window") {
  std::vector<seq_case> batch = {{40, 40}, {70, 1}, {33, 9}};
  for (int32_t window : {1, 4, 16, 17, 100}) {
    INFO("window " << window);
    check_attention(batch, 4, 2, 8, 16, window, uint32_t(window));
    check_attention(batch, 2, 1, 64, 16, window, uint32_t(window) + 50);
  }
}

// Rows of 64-wide heads in runs of 16 or more take the matrix-product path; others the row loop.
TEST_CASE("paged attention: long prefills past one tile of query rows, with and without a window") {
  std::vector<seq_case> batch = {{330, 300}, {20, 1}, {280, 270}};
  for (int32_t window : {0, 7, 100}) {
    INFO("window " << window);
    check_attention(batch, 4, 1, 64, 16, window, uint32_t(window) + 9);
  }
}

namespace {

void check_rope(int64_t heads, int64_t kv_heads, int64_t dim) {
  auto be = make_cpu_backend(1);
  std::mt19937 rng(uint32_t(heads * 100 + dim));
  const int64_t tokens = 5, half = dim / 2, blocks = 3, bs = 4;
  auto qv = random_values(size_t(tokens * heads * dim), rng);
  auto kv = random_values(size_t(tokens * kv_heads * dim), rng);
  auto vv = random_values(kv.size(), rng);
  std::vector<float> freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) freq[size_t(i)] = float(std::pow(10000.0, -double(2 * i) / double(dim)));
  std::vector<int32_t> positions = {0, 1, 7, 300, 4095}, slots = {11, 0, -1, 5, 6};
  std::vector<float> qkv_host;  // each token's q heads, k heads, v heads
  const size_t q_row = size_t(heads * dim), kv_row = size_t(kv_heads * dim);
  for (size_t t = 0; t < size_t(tokens); ++t) {
    qkv_host.insert(qkv_host.end(), qv.begin() + long(t * q_row), qv.begin() + long((t + 1) * q_row));
    qkv_host.insert(qkv_host.end(), kv.begin() + long(t * kv_row), kv.begin() + long((t + 1) * kv_row));
    qkv_host.insert(qkv_host.end(), vv.begin() + long(t * kv_row), vv.begin() + long((t + 1) * kv_row));
  }
  tensor qkv = upload(*be, qkv_host, {tokens, heads + 2 * kv_heads, dim}), q = be->alloc({tokens, heads, dim});
  tensor inv = upload(*be, freq, {half});
  tensor kc = be->alloc_zeroed({blocks, bs, kv_heads, dim}), vc = be->alloc_zeroed({blocks, bs, kv_heads, dim});
  be->rope_write_kv(qkv, q, be->upload_indices(positions, {tokens}), inv, be->upload_indices(slots, {tokens}), kc, vc);
  REQUIRE(download(*be, qkv) == qkv_host);  // the input is left as it was
  auto rotate = [&](std::vector<float> x, int64_t nheads) {
    std::vector<float> outv(x.size());
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t h = 0; h < nheads; ++h)
        for (int64_t i = 0; i < half; ++i) {
          double angle = float(positions[size_t(t)]) * freq[size_t(i)];  // a float32 product, as HF
          size_t a = size_t((t * nheads + h) * dim + i), b = a + size_t(half);
          outv[a] = float(x[a] * std::cos(angle) - x[b] * std::sin(angle));
          outv[b] = float(x[b] * std::cos(angle) + x[a] * std::sin(angle));
        }
    return outv;
  };
  auto want_q = rotate(qv, heads), want_k = rotate(kv, kv_heads);
  auto got_q = download(*be, q);
  for (size_t i = 0; i < want_q.size(); ++i) REQUIRE(std::abs(got_q[i] - want_q[i]) < 1e-5);
  auto cache_k = download(*be, kc), cache_v = download(*be, vc);
  const size_t row = kv_row;
  std::vector<bool> written(size_t(blocks * bs), false);
  for (int64_t t = 0; t < tokens; ++t) {
    if (slots[size_t(t)] < 0) continue;
    size_t slot = size_t(slots[size_t(t)]);
    written[slot] = true;
    for (size_t i = 0; i < row; ++i) {
      REQUIRE(std::abs(cache_k[slot * row + i] - want_k[size_t(t) * row + i]) < 1e-5);
      REQUIRE(cache_v[slot * row + i] == vv[size_t(t) * row + i]);
    }
  }
  for (size_t slot = 0; slot < written.size(); ++slot)
    if (!written[slot])
      for (size_t i = 0; i < row; ++i) REQUIRE((cache_k[slot * row + i] == 0 && cache_v[slot * row + i] == 0));
}

}  // namespace

TEST_CASE("rope_write_kv rotates q and k in rotate-half layout and writes k and v at their slots") {
  for (auto [heads, kv_heads, dim] : {std::tuple<int64_t, int64_t, int64_t>{4, 2, 8}, {8, 1, 64}, {2, 2, 128}}) {
    INFO("heads " << heads << " kv heads " << kv_heads << " head_dim " << dim);
    check_rope(heads, kv_heads, dim);
  }
}
