// cuda_bench --prefill-attention: the prefill attention kernel alone, at the shapes offline-256 and
// prefill-2k give it (Llama-2-7B: 32 heads, head_dim 128). FLOPs are
// the causal work: 4 * head_dim * heads * (keys each query row sees). Calls cycle through several
// copies of the pages, placed at random in the cache, so that consecutive calls do not find their
// K/V in L2 (as a step's layers do not).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "bench/cuda_bench_util.hpp"
#include "kernels/cuda/cuda_backend.hpp"

namespace troupe::bench {

void prefill_attention_bench() {
  struct chunk {
    int32_t context, fresh;
  };
  struct bench_case {
    const char* name;
    std::vector<chunk> seqs;
  };
  // Prompt lengths as offline-256 draws them (uniform 64..1024): a first-wave step of several
  // fresh prompts filling 4,096 tokens, one prompt alone (the steps after the first wave carry one
  // new prompt beside the decodes), a chunk after a cached prefix, and prefill-2k.
  const std::vector<bench_case> cases = {
      {"7 prompts, 4096 tokens", {{903, 903}, {212, 212}, {640, 640}, {1011, 1011}, {377, 377}, {580, 580}, {373, 373}}},
      {"one prompt of 584", {{584, 584}}},
      {"one prompt of 1000", {{1000, 1000}}},
      {"512 after 512 cached", {{1024, 512}}},
      {"prefill-2k", {{2048, 2048}}},
  };
  const int64_t heads = 32, kv_heads = 32, dim = 128, bs = 16;
  auto be = kernels::make_cuda_backend(0, kernels::dtype::bf16);
  kernels::cuda_set_dummy_weights(*be, 17);
  std::printf("\nprefill attention (bf16, %lld heads, head_dim %lld, blocks of %lld), us per call and TFLOP/s:\n",
              (long long)heads, (long long)dim, (long long)bs);
  std::printf("| case | GFLOP | us per call | TFLOP/s |\n| --- | --- | --- | --- |\n");
  for (const auto& c : cases) {
    int64_t pages = 0, tokens = 0, max_pages = 0;
    int32_t max_q = 0, max_len = 0;
    double keys = 0;
    for (const auto& s : c.seqs) {
      const int64_t p = (s.context + bs - 1) / bs;
      pages += p;
      max_pages = std::max(max_pages, p);
      tokens += s.fresh;
      max_q = std::max(max_q, s.fresh);
      max_len = std::max(max_len, s.context);
      for (int32_t r = 0; r < s.fresh; ++r) keys += double(s.context - s.fresh + r + 1);
    }
    const double flops = 4.0 * double(dim) * double(heads) * keys;
    const double page_bytes = 2.0 * 2.0 * double(bs * kv_heads * dim);
    const int copies = int(std::clamp(std::ceil(256e6 / (double(pages) * page_bytes)), 1.0, 8.0));
    const int64_t pool = pages * copies;
    const kernels::shape cache_dims{pool, bs, kv_heads, dim};
    auto kc = be->upload_weight(kernels::dtype::bf16, nullptr, cache_dims);
    auto vc = be->upload_weight(kernels::dtype::bf16, nullptr, cache_dims);
    auto q = be->upload_weight(kernels::dtype::bf16, nullptr, {tokens, heads, dim});
    auto out = be->alloc({tokens, heads, dim});
    std::vector<int32_t> perm(static_cast<size_t>(pool));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(uint32_t(tokens)));
    std::vector<int32_t> qsl = {0}, lens;
    for (const auto& s : c.seqs) {
      qsl.push_back(qsl.back() + s.fresh);
      lens.push_back(s.context);
    }
    const auto n = int64_t(c.seqs.size());
    std::vector<kernels::attention_batch> batches(static_cast<size_t>(copies));
    for (int cp = 0; cp < copies; ++cp) {
      std::vector<int32_t> table(size_t(n * max_pages), 0);
      size_t next = size_t(cp) * size_t(pages);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t p = 0; p * bs < c.seqs[size_t(i)].context; ++p) table[size_t(i * max_pages + p)] = perm[next++];
      auto& b = batches[size_t(cp)];
      b.query_start_loc = be->upload_indices(qsl, {n + 1});
      b.seq_lens = be->upload_indices(lens, {n});
      b.block_tables = be->upload_indices(table, {n, max_pages});
      b.max_query_len = max_q;
      b.max_seq_len = max_len;
      b.scale = 1.0f / std::sqrt(float(dim));
    }
    {
      // Host clock around 16 calls and a sync (the backend's stream is its own), median of 7.
      std::vector<double> times;
      int issued = 0;
      for (int r = 0; r < 7; ++r)
        times.push_back(per_call(*be, 16, [&] { be->paged_attention(q, kc, vc, batches[size_t(issued++ % copies)], out); }));
      const double t = median(times);
      std::printf("| %s | %.1f | %.1f | %.0f |\n", c.name, flops / 1e9, t * 1e6, flops / t / 1e12);
    }
    if (const std::string err = kernels::cuda_backend_error(*be); !err.empty()) {
      std::fprintf(stderr, "cuda_bench: backend error: %s\n", err.c_str());
      std::exit(1);
    }
  }
}

}  // namespace troupe::bench
