// Decode steps replayed from CUDA graphs against the same steps run op by op: same logits (up to the
// rounding a different split of the attention sum gives), for padded batch sizes, context bounds
// crossing a graph's length bucket, sequences that do not sample, and inputs that change between
// replays of one graph.
#include <algorithm>
#include <cstdio>

#include "engine/model/llama_model.hpp"
#include "tests/kernels/test_cuda_util.hpp"

using namespace troupe::cuda_test;
using troupe::engine::kv_cache;
using troupe::engine::llama_model;
using troupe::engine::step_input;

namespace {

constexpr int32_t block = 16;
constexpr int32_t blocks_per_seq = 40;  // 640 tokens a sequence at most

troupe::config::model_config small_config() {
  troupe::config::model_config cfg;
  cfg.hidden_size = 256;
  cfg.intermediate_size = 688;
  cfg.num_hidden_layers = 2;
  cfg.num_attention_heads = 4;
  cfg.num_key_value_heads = 2;
  cfg.head_dim = 64;
  cfg.vocab_size = 512;
  cfg.max_position_embeddings = 1024;
  return cfg;
}

// Sequence s owns blocks [s * blocks_per_seq, (s + 1) * blocks_per_seq); its tokens are random.
struct sequences {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<int32_t> computed;  // tokens in the cache

  // A step with `news[s]` new tokens for each listed sequence (the ones with news > 0).
  step_input step(const std::vector<int32_t>& which, const std::vector<int32_t>& news, bool all_sample) const {
    step_input in;
    in.query_start_loc.push_back(0);
    in.max_blocks_per_seq = blocks_per_seq;
    for (size_t i = 0; i < which.size(); ++i) {
      const int32_t s = which[i], start = computed[size_t(s)], len = start + news[i];
      for (int32_t p = start; p < len; ++p) {
        in.token_ids.push_back(tokens[size_t(s)][size_t(p)]);
        in.positions.push_back(p);
        in.slot_mapping.push_back((s * blocks_per_seq + p / block) * block + p % block);
      }
      in.query_start_loc.push_back(in.query_start_loc.back() + news[i]);
      in.seq_lens.push_back(len);
      for (int32_t b = 0; b < blocks_per_seq; ++b) in.block_tables.push_back(s * blocks_per_seq + b);
      if (all_sample || i % 3 != 1) in.logits_indices.push_back(in.query_start_loc.back() - 1);
    }
    return in;
  }
};

std::vector<float> forward(llama_model& m, const step_input& in, kv_cache& cache) {
  auto logits = m.forward(in, cache);
  REQUIRE(logits.has_value());
  return *logits;
}

}  // namespace

TEST_CASE("decode steps from CUDA graphs equal the same steps op by op", "[cuda]") {
  auto gpu = gpu_or_skip(dtype::bf16);
  if (!gpu) return;
  const auto cfg = small_config();
  auto graphed = llama_model::random(cfg, 7, *gpu);
  auto eager = llama_model::random(cfg, 7, *gpu);
  REQUIRE(graphed.has_value());
  REQUIRE(eager.has_value());
  (*graphed)->set_graph_batch(32);
  (*eager)->set_graph_batch(0);
  constexpr int32_t num_seqs = 24;
  auto cache_g = (*graphed)->make_kv_cache(num_seqs * blocks_per_seq, block);
  auto cache_e = (*eager)->make_kv_cache(num_seqs * blocks_per_seq, block);

  std::mt19937 rng(3);
  sequences seqs;
  for (int32_t s = 0; s < num_seqs; ++s) {
    std::vector<int32_t> t(blocks_per_seq * block);
    for (auto& id : t) id = int32_t(rng() % uint32_t(cfg.vocab_size));
    seqs.tokens.push_back(t);
    seqs.computed.push_back(0);
  }
  // Prompts of 5 to 300 tokens (some past the first 256-token length bucket), one sequence a step,
  // op by op in both.
  std::vector<int32_t> all(num_seqs);
  for (int32_t s = 0; s < num_seqs; ++s) {
    all[size_t(s)] = s;
    const int32_t prompt = 5 + int32_t(rng() % 296);
    const step_input prefill = seqs.step({s}, {prompt}, true);
    REQUIRE(forward(**graphed, prefill, *cache_g).size() == forward(**eager, prefill, *cache_e).size());
    seqs.computed[size_t(s)] = prompt;
  }

  double worst = 0;
  int steps = 0, argmax_differs = 0, rows = 0;
  // Batches of 1, 3, 8, 13, 24 sequences (padded to 1, 4, 8, 16, 24), some rows not sampling.
  for (int32_t batch : {1, 3, 8, 13, 24, 13, 3}) {
    for (int rep = 0; rep < 6; ++rep) {
      std::vector<int32_t> which;
      for (int32_t s = 0; s < num_seqs && int32_t(which.size()) < batch; ++s)
        if ((s + rep) % 2 == 0 || num_seqs - s <= batch - int32_t(which.size())) which.push_back(s);
      const step_input in = seqs.step(which, std::vector<int32_t>(which.size(), 1), rep % 2 == 0);
      const auto got = forward(**graphed, in, *cache_g), want = forward(**eager, in, *cache_e);
      REQUIRE(got.size() == want.size());
      REQUIRE(got.size() == in.logits_indices.size() * size_t(cfg.vocab_size));
      worst = std::max(worst, l2_rel_error(got, want));
      for (size_t r = 0; r < in.logits_indices.size(); ++r, ++rows) {
        auto row = [&](const std::vector<float>& v) {
          return std::max_element(v.begin() + ptrdiff_t(r) * cfg.vocab_size, v.begin() + ptrdiff_t(r + 1) * cfg.vocab_size) -
                 v.begin();
        };
        if (row(got) != row(want)) ++argmax_differs;
      }
      for (int32_t s : which) ++seqs.computed[size_t(s)];
      ++steps;
    }
  }
  std::printf("graphs: %d decode steps, %zu graphs recorded, l2 relative difference at most %.2e, argmax differs "
              "in %d of %d rows\n",
              steps, (*graphed)->num_graphs(), worst, argmax_differs, rows);
  CHECK(cuda_backend_error(*gpu).empty());
  CHECK((*graphed)->num_graphs() >= 5);  // batch buckets 1, 4, 8, 16, 24 at least, two length buckets
  CHECK((*eager)->num_graphs() == 0);
  CHECK(worst < 1e-2);
  CHECK(argmax_differs <= rows / 50);

  // A step larger than any before grows the workspace: the graphs are recorded again on the new
  // buffers.
  const size_t before = (*graphed)->num_graphs();
  const std::vector<int32_t> eight{0, 1, 2, 3, 4, 5, 6, 7};
  const step_input grow = seqs.step(eight, std::vector<int32_t>(8, 60), true);
  CHECK(l2_rel_error(forward(**graphed, grow, *cache_g), forward(**eager, grow, *cache_e)) < 1e-2);
  for (int32_t s : eight) seqs.computed[size_t(s)] += 60;
  const step_input after = seqs.step(all, std::vector<int32_t>(num_seqs, 1), true);
  CHECK(l2_rel_error(forward(**graphed, after, *cache_g), forward(**eager, after, *cache_e)) < 1e-2);
  CHECK((*graphed)->num_graphs() == 1);  // the old ones were dropped, the 24-row graph recorded anew
  CHECK(before > 1);
  CHECK(cuda_backend_error(*gpu).empty());
}
