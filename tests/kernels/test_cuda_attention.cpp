// The CUDA paged attention (decode kernel split over long contexts; tensor-core prefill kernel)
// against the CPU backend: batches mixing decode rows, fresh prompts and chunks after a cached
// prefix, over shuffled cache blocks, GQA 1/4/8, head_dim 8 to 128, sliding windows, long contexts.
#include <numeric>

#include "tests/kernels/test_cuda_util.hpp"

using namespace troupe::cuda_test;

namespace {

struct seq_case {
  int32_t context;  // tokens in all, the new ones included
  int32_t fresh;    // new tokens (query rows)
};

struct attention_case {
  std::vector<seq_case> seqs;
  int64_t heads, kv_heads, dim, block_size;
  int32_t window;
  int32_t bound = 0;  // max_seq_len given to the kernels when larger than the longest context (a graph's bound)
};

// n decode rows (one new token each) of contexts drawn from [lo, hi].
std::vector<seq_case> decode_rows(std::mt19937& rng, int n, int lo, int hi) {
  std::uniform_int_distribution<int32_t> pick(lo, hi);
  std::vector<seq_case> v;
  for (int i = 0; i < n; ++i) v.push_back({pick(rng), 1});
  return v;
}

// Runs one case on the GPU (with the prefill kernel allowed or not) and on the CPU; returns the errors.
void check_case(backend& gpu, const attention_case& c, uint32_t seed) {
  auto cpu = make_cpu_backend(2);
  std::mt19937 rng(seed);
  int64_t max_blocks = 0, total_blocks = 3, tokens = 0;
  int32_t max_q = 0, max_len = 0;
  for (auto s : c.seqs) {
    const int64_t b = (s.context + c.block_size - 1) / c.block_size;
    max_blocks = std::max(max_blocks, b);
    total_blocks += b;
    tokens += s.fresh;
    max_q = std::max(max_q, s.fresh);
    max_len = std::max(max_len, s.context);
  }
  std::vector<int32_t> pool(static_cast<size_t>(total_blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<int32_t> tables(size_t(int64_t(c.seqs.size()) * max_blocks), 0), qsl = {0}, lens;
  size_t next = 0;
  for (size_t s = 0; s < c.seqs.size(); ++s) {
    for (int64_t b = 0; b * c.block_size < c.seqs[s].context; ++b) tables[s * size_t(max_blocks) + size_t(b)] = pool[next++];
    qsl.push_back(qsl.back() + c.seqs[s].fresh);
    lens.push_back(c.seqs[s].context);
  }
  const shape cache_dims{total_blocks, c.block_size, c.kv_heads, c.dim};
  auto kc = rounded(gpu, random_values(size_t(cache_dims.numel()), rng));
  auto vc = rounded(gpu, random_values(size_t(cache_dims.numel()), rng));
  auto q = rounded(gpu, random_values(size_t(tokens * c.heads * c.dim), rng));
  const shape qdims{tokens, c.heads, c.dim};
  auto run = [&](backend& be, bool lists) {
    attention_batch batch;
    if (lists) {  // one-row sequences (longest first, as the model orders them) apart from the others
      std::vector<int32_t> singles, others;
      for (size_t s = 0; s < c.seqs.size(); ++s) (c.seqs[s].fresh == 1 ? singles : others).push_back(int32_t(s));
      std::stable_sort(singles.begin(), singles.end(), [&](int32_t a, int32_t b) { return lens[size_t(a)] > lens[size_t(b)]; });
      if (!singles.empty()) batch.decode_seqs = be.upload_indices(singles, {int64_t(singles.size())});
      if (!singles.empty() && !others.empty()) batch.prefill_seqs = be.upload_indices(others, {int64_t(others.size())});
    }
    batch.query_start_loc = be.upload_indices(qsl, {int64_t(qsl.size())});
    batch.seq_lens = be.upload_indices(lens, {int64_t(lens.size())});
    batch.block_tables = be.upload_indices(tables, {int64_t(c.seqs.size()), max_blocks});
    batch.max_query_len = max_q;
    batch.max_seq_len = std::max(max_len, c.bound);
    batch.sliding_window = c.window;
    batch.scale = 1.0f / std::sqrt(float(c.dim));
    auto out = poisoned(be, qdims);
    be.paged_attention(upload(be, q, qdims), upload(be, kc, cache_dims), upload(be, vc, cache_dims), batch, out);
    return download(be, out);
  };
  const auto want = run(*cpu, true);
  for (int mode = 0; mode < 3; ++mode) {  // prefill kernel with the split lists, without them, per-row only
    const bool prefill_kernel = mode < 2;
    cuda_use_prefill_kernel(gpu, prefill_kernel);
    const auto got = run(gpu, mode == 0);
    size_t bad = 0;  // the first element far off (or NaN: never written), to say which token fails
    while (bad < got.size() && !(std::fabs(got[bad] - want[bad]) > 0.05) && !std::isnan(got[bad])) ++bad;
    INFO("prefill kernel allowed " << prefill_kernel << ", split lists " << (mode == 0)
                                   << ": max rel " << max_rel_error(got, want) << " l2 rel " << l2_rel_error(got, want)
                                   << "; first bad element " << bad << " (token " << bad / size_t(c.heads * c.dim)
                                   << ", head " << bad / size_t(c.dim) % size_t(c.heads) << ") of " << got.size());
    CHECK(max_rel_error(got, want) < tolerance(gpu.compute_type()));
    CHECK(l2_rel_error(got, want) < tolerance(gpu.compute_type()) / 2);
  }
  cuda_use_prefill_kernel(gpu, true);
  CHECK(cuda_backend_error(gpu).empty());
}

TEST_CASE("cuda paged attention matches the CPU: decode batches", "[cuda]") {
  for (dtype ct : {dtype::bf16, dtype::f16}) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    const std::vector<attention_case> cases = {
        {{{1, 1}}, 4, 4, 8, 16, 0},
        {{{17, 1}, {16, 1}, {15, 1}}, 8, 2, 16, 16, 0},
        {{{300, 1}, {1, 1}, {64, 1}}, 32, 32, 128, 16, 0},    // MHA
        {{{1000, 1}, {33, 1}}, 32, 8, 128, 16, 0},            // GQA 4
        {{{4097, 1}}, 32, 4, 128, 16, 0},                     // GQA 8, long: split and combined
        {{{2500, 1}, {129, 1}}, 16, 2, 64, 32, 0},            // GQA 8, head_dim 64, blocks of 32
        {{{3000, 1}, {50, 1}}, 8, 1, 128, 16, 700},           // sliding window, one KV head
        {{{640, 1}}, 64, 4, 32, 16, 0},                       // 16 query heads per KV head: two groups
        {{{90, 1}, {12, 1}, {200, 1}, {7, 1}, {1, 1}}, 12, 12, 256, 16, 0},
    };
    uint32_t seed = 10;
    for (const auto& c : cases) {
      INFO(to_string(ct) << " heads " << c.heads << "/" << c.kv_heads << " dim " << c.dim << " first context "
                         << c.seqs[0].context << " window " << c.window);
      check_case(*gpu, c, seed++);
    }
  }
}

// Decode batches of many sequences with scattered lengths (the pipelined kernel's tiles end anywhere,
// one split or several), under a power-of-two max_seq_len as CUDA graphs give it, so splits past a
// sequence's end must add nothing.
TEST_CASE("cuda paged attention matches the CPU: large decode batches under a length bound", "[cuda]") {
  for (dtype ct : {dtype::bf16, dtype::f16}) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    std::mt19937 rng(7);
    auto lengths = [&](int n, int lo, int hi) { return decode_rows(rng, n, lo, hi); };
    const std::vector<attention_case> cases = {
        {lengths(64, 1, 1100), 32, 32, 128, 16, 0, 2048},  // MHA, Llama-2 shape
        {lengths(48, 150, 1000), 32, 8, 128, 16, 0, 1024},  // GQA 4, Llama-3 shape
        {lengths(3, 120, 400), 32, 32, 128, 16, 0, 512},    // decode of a few: split, most splits past the end
        {{{200, 1}}, 32, 8, 128, 16, 0, 4096},              // one sequence, bound far past its end
        {lengths(20, 1, 700), 16, 2, 64, 16, 300, 1024},    // GQA 8, head_dim 64, sliding window
        {lengths(9, 30, 500), 24, 8, 128, 32, 0, 512},      // group of 3 (a partly used slot), blocks of 32
        {lengths(5, 1, 300), 4, 4, 256, 16, 0, 512},        // head_dim 256
    };
    uint32_t seed = 50;
    for (const auto& c : cases) {
      INFO(to_string(ct) << " " << c.seqs.size() << " seqs, heads " << c.heads << "/" << c.kv_heads << " dim "
                         << c.dim << " bound " << c.bound);
      check_case(*gpu, c, seed++);
    }
  }
}

TEST_CASE("cuda paged attention matches the CPU: prefill, chunked prefill and mixed batches", "[cuda]") {
  for (dtype ct : {dtype::bf16, dtype::f16}) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    const std::vector<attention_case> cases = {
        {{{64, 64}}, 4, 4, 64, 16, 0},
        {{{77, 77}}, 8, 2, 128, 16, 0},                    // odd length, GQA 4
        {{{200, 77}}, 32, 4, 128, 16, 0},                  // chunk after a cached prefix, GQA 8
        {{{1000, 130}, {5, 5}, {300, 1}}, 32, 8, 128, 16, 0},  // mixed: chunk, short prompt, decode row
        {{{513, 513}}, 16, 16, 64, 32, 0},
        {{{700, 700}}, 8, 2, 128, 16, 100},                // sliding window inside the prompt
        {{{1500, 200}}, 8, 8, 64, 16, 333},                // window reaching into the cached prefix
        {{{2048, 2048}}, 32, 8, 128, 16, 0},               // prefill-2k shape (GQA)
        {{{40, 40}, {17, 9}}, 4, 2, 16, 16, 0},            // head_dim 16: per-row kernel only
        {{{33, 33}}, 8, 4, 8, 16, 5},                      // head_dim 8 with a window
        // decode rows before, between and after prompt chunks, long contexts that split
        {{{900, 1}, {300, 64}, {4000, 1}, {17, 1}, {129, 129}, {2500, 1}}, 32, 32, 128, 16, 0},
        {{{1200, 1}, {640, 200}, {3000, 1}, {65, 1}}, 32, 8, 128, 16, 0},
        {{{800, 1}, {90, 90}, {1600, 1}}, 16, 4, 64, 16, 256},  // with a window
        // several fresh prompts of offline-256's lengths, one shorter than a block's rows, MHA
        {{{903, 903}, {212, 212}, {40, 40}, {377, 377}, {300, 1}}, 32, 32, 128, 16, 0},
        // exactly two sequences, neither decoding (the model passes no lists then: an absent list
        // once counted as one sequence, and the second sequence's rows were never written)
        {{{1100, 300}, {130, 130}}, 8, 8, 128, 16, 250},   // chunk after a prefix, windowed, head_dim 128
        {{{130, 130}, {1100, 300}}, 8, 8, 128, 16, 0},
        {{{300, 300}, {130, 130}}, 32, 32, 128, 16, 0},
        {{{1100, 300}, {500, 130}}, 8, 8, 64, 16, 0},
        {{{100, 100}, {70, 70}}, 8, 2, 128, 16, 0},
    };
    uint32_t seed = 100;
    for (const auto& c : cases) {
      INFO(to_string(ct) << " heads " << c.heads << "/" << c.kv_heads << " dim " << c.dim << " first "
                         << c.seqs[0].context << "/" << c.seqs[0].fresh << " window " << c.window);
      check_case(*gpu, c, seed++);
    }
  }
}

}  // namespace

namespace {

// A decode step as the model issues it: rope_write_kv (rotated q to its buffer; each row's key and
// value into the cache, or nowhere for slot -1) then paged_attention. On the GPU the attention takes
// the RoPE and the write in (one block per KV head), unless `apart` forces the two ops apart.
// Inputs are rounded to `gpu`'s type. Returns the output, then the K and V caches.
std::vector<std::vector<float>> rope_then_attention(backend& be, backend& gpu, const attention_case& c, uint32_t seed,
                                                    bool apart) {
  std::mt19937 rng(seed);
  int64_t max_blocks = 0, total_blocks = 3;
  for (auto s : c.seqs) {
    max_blocks = std::max<int64_t>(max_blocks, (s.context + c.block_size - 1) / c.block_size);
    total_blocks += (s.context + c.block_size - 1) / c.block_size;
  }
  std::vector<int32_t> pool(static_cast<size_t>(total_blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  const auto rows = int64_t(c.seqs.size());
  std::vector<int32_t> tables(size_t(rows * max_blocks), 0), qsl = {0}, lens, positions, slots;
  size_t next = 0;
  int32_t longest = 0;
  for (size_t s = 0; s < c.seqs.size(); ++s) {
    const int32_t ctx = c.seqs[s].context;
    for (int64_t b = 0; b * c.block_size < ctx; ++b) tables[s * size_t(max_blocks) + size_t(b)] = pool[next++];
    qsl.push_back(qsl.back() + 1);
    lens.push_back(ctx);
    positions.push_back(ctx - 1);
    const int32_t page = tables[s * size_t(max_blocks) + size_t((ctx - 1) / c.block_size)];
    slots.push_back(s % 4 == 3 ? -1 : page * int32_t(c.block_size) + (ctx - 1) % int32_t(c.block_size));
    longest = std::max(longest, ctx);
  }
  const shape cache_dims{total_blocks, c.block_size, c.kv_heads, c.dim};
  const int64_t width = c.heads + 2 * c.kv_heads;
  auto k0 = rounded(gpu, random_values(size_t(cache_dims.numel()), rng));
  auto v0 = rounded(gpu, random_values(size_t(cache_dims.numel()), rng));
  auto qkv = rounded(gpu, random_values(size_t(rows * width * c.dim), rng));
  std::vector<float> freq(size_t(c.dim / 2));
  for (size_t i = 0; i < freq.size(); ++i) freq[i] = std::pow(10000.0f, -2.0f * float(i) / float(c.dim));
  auto kc = upload(be, k0, cache_dims), vc = upload(be, v0, cache_dims);
  auto q = poisoned(be, {rows, c.heads, c.dim});
  be.rope_write_kv(upload(be, qkv, {rows, width, c.dim}), q, be.upload_indices(positions, {rows}),
                   be.upload_weight(dtype::f32, freq.data(), {int64_t(freq.size())}), be.upload_indices(slots, {rows}),
                   kc, vc);
  if (apart) be.synchronize();  // launches the RoPE op on its own
  attention_batch batch;
  std::vector<int32_t> order(static_cast<size_t>(rows));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return lens[size_t(a)] > lens[size_t(b)]; });
  batch.decode_seqs = be.upload_indices(order, {rows});
  batch.query_start_loc = be.upload_indices(qsl, {rows + 1});
  batch.seq_lens = be.upload_indices(lens, {rows});
  batch.block_tables = be.upload_indices(tables, {rows, max_blocks});
  batch.max_query_len = 1;
  batch.max_seq_len = std::max(longest, c.bound);
  batch.sliding_window = c.window;
  batch.scale = 1.0f / std::sqrt(float(c.dim));
  auto out = poisoned(be, {rows, c.heads, c.dim});
  be.paged_attention(q, kc, vc, batch, out);
  return {download(be, out), download(be, kc), download(be, vc)};
}

}  // namespace

// Decode steps with RoPE and the K/V write fused into the per-row kernel (batches small enough to be
// split, one block per KV head: groups of up to 8 query heads, head_dim 16 and up; the backend fuses
// only MHA by default, so the test widens that to 8), against the CPU and against the GPU running the
// two ops apart; the other cases (37 MHA rows, 16 heads per KV head, head_dim 8) take the ops apart.
TEST_CASE("cuda decode attention with RoPE and the K/V write taken in matches the ops apart", "[cuda]") {
  for (dtype ct : {dtype::bf16, dtype::f16}) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    REQUIRE(cuda_set_fused_rope_group(*gpu, 8));
    auto cpu = make_cpu_backend(2);
    std::mt19937 rng(11);
    auto lengths = [&](int n, int lo, int hi) { return decode_rows(rng, n, lo, hi); };
    const std::vector<attention_case> cases = {
        {lengths(1, 130, 130), 32, 32, 128, 16, 0, 512},   // decode-1: split, the row's key in one split
        {lengths(37, 1, 1100), 32, 32, 128, 16, 0, 2048},  // MHA batch, some contexts of one key
        {lengths(24, 20, 900), 32, 8, 128, 16, 0, 1024},   // GQA 4
        {lengths(9, 1, 300), 16, 2, 64, 32, 0, 512},       // GQA 8, head_dim 64, blocks of 32
        {lengths(6, 40, 700), 8, 2, 16, 16, 200, 1024},    // head_dim 16, sliding window
        {lengths(5, 3, 400), 64, 4, 32, 16, 0, 512},       // 16 query heads a KV head: apart
        {lengths(4, 2, 100), 4, 4, 8, 16, 0, 256},         // head_dim 8: apart
    };
    uint32_t seed = 90;
    for (const auto& c : cases) {
      INFO(to_string(ct) << " " << c.seqs.size() << " seqs, heads " << c.heads << "/" << c.kv_heads << " dim " << c.dim);
      const auto fused = rope_then_attention(*gpu, *gpu, c, seed, false);
      const auto apart = rope_then_attention(*gpu, *gpu, c, seed, true);
      const auto want = rope_then_attention(*cpu, *gpu, c, seed, true);
      ++seed;
      CHECK(max_rel_error(fused[1], apart[1]) == 0.0);  // the same rotation, rounded alike
      CHECK(max_rel_error(fused[2], apart[2]) == 0.0);
      CHECK(max_rel_error(fused[0], apart[0]) == 0.0);
      CHECK(max_rel_error(fused[0], want[0]) < tolerance(ct));
      CHECK(l2_rel_error(fused[0], want[0]) < tolerance(ct) / 2);
      CHECK(max_rel_error(fused[1], want[1]) < tolerance(ct));
      CHECK(max_rel_error(fused[2], want[2]) == 0.0);
    }
    CHECK(cuda_backend_error(*gpu).empty());
  }
}
