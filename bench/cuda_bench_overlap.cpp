// cuda_bench --overlap: can a mixed step's decode rows (memory-bound: weights and K/V reads) run
// beside its prompt chunk (FLOP-bound products) on a second stream? Two backends (two streams, two
// copies of the weights) run the prompt chunk P and the decode batch D; the table compares P and D
// alone, one after the other, at once, and the mixed step the engine runs today (P + D in one pass).
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/cuda_bench_util.hpp"
#include "engine/model/llama_model.hpp"
#include "engine/model/reference_shapes.hpp"
#include "kernels/cuda/cuda_backend.hpp"

namespace troupe::bench {
namespace {

using engine::kv_cache;
using engine::llama_model;
using engine::step_input;

struct seq_shape {
  int32_t new_tokens, context;  // context includes the new tokens
};

// One step over sequences laid out in consecutive blocks from `first_block`, each with its own.
step_input make_step(const std::vector<seq_shape>& seqs, int64_t block_size, int32_t first_block, int64_t vocab) {
  step_input in;
  int32_t widest = 0;
  for (const auto& s : seqs) widest = std::max<int32_t>(widest, int32_t((s.context + block_size - 1) / block_size));
  in.max_blocks_per_seq = widest;
  in.query_start_loc.push_back(0);
  int32_t block = first_block;
  uint32_t x = 12345;
  for (const auto& s : seqs) {
    const int32_t base = block;
    for (int32_t b = 0; b < widest; ++b) in.block_tables.push_back(b * block_size < s.context ? base + b : 0);
    for (int32_t j = 0; j < s.new_tokens; ++j) {
      const int32_t pos = s.context - s.new_tokens + j;
      x = x * 1664525u + 1013904223u;
      in.token_ids.push_back(int32_t(3 + x % uint32_t(vocab - 3)));
      in.positions.push_back(pos);
      in.slot_mapping.push_back(int32_t((base + pos / block_size) * block_size + pos % block_size));
    }
    in.query_start_loc.push_back(in.query_start_loc.back() + s.new_tokens);
    in.seq_lens.push_back(s.context);
    in.logits_indices.push_back(in.query_start_loc.back() - 1);
    block += int32_t((s.context + block_size - 1) / block_size);
  }
  return in;
}

// The same sequences side by side in one step (the second's blocks after the first's).
step_input join(const step_input& a, const step_input& b) {
  step_input in;
  in.max_blocks_per_seq = std::max(a.max_blocks_per_seq, b.max_blocks_per_seq);
  in.query_start_loc.push_back(0);
  for (const step_input* p : {&a, &b}) {
    const int32_t offset = in.query_start_loc.back();
    in.token_ids.insert(in.token_ids.end(), p->token_ids.begin(), p->token_ids.end());
    in.positions.insert(in.positions.end(), p->positions.begin(), p->positions.end());
    in.slot_mapping.insert(in.slot_mapping.end(), p->slot_mapping.begin(), p->slot_mapping.end());
    in.seq_lens.insert(in.seq_lens.end(), p->seq_lens.begin(), p->seq_lens.end());
    for (int32_t s = 0; s < p->num_seqs(); ++s) {
      in.query_start_loc.push_back(offset + p->query_start_loc[size_t(s) + 1]);
      in.logits_indices.push_back(offset + p->logits_indices[size_t(s)]);
      for (int32_t b = 0; b < in.max_blocks_per_seq; ++b)
        in.block_tables.push_back(b < p->max_blocks_per_seq ? p->block_tables[size_t(s * p->max_blocks_per_seq + b)] : 0);
    }
  }
  return in;
}

struct engine_copy {
  std::unique_ptr<kernels::backend> be;
  std::unique_ptr<llama_model> model;
  std::unique_ptr<kv_cache> cache;
};

engine_copy make_copy(const config::model_config& cfg, int64_t blocks, bool high_priority) {
  engine_copy c;
  if (high_priority) setenv("TROUPE_CUDA_STREAM_PRIORITY", "high", 1);
  std::string why;
  c.be = kernels::make_cuda_backend(0, kernels::dtype::bf16, &why);
  unsetenv("TROUPE_CUDA_STREAM_PRIORITY");
  if (!c.be) {
    std::fprintf(stderr, "cuda_bench: no usable GPU: %s\n", why.c_str());
    std::exit(1);
  }
  kernels::cuda_set_dummy_weights(*c.be, 1234);
  auto getter = [](const std::string&, const std::vector<int64_t>&) -> expected<llama_model::host_weight> {
    return llama_model::host_weight{kernels::dtype::bf16, nullptr};
  };
  auto model = llama_model::build(cfg, *c.be, getter, nullptr);
  if (!model) {
    std::fprintf(stderr, "cuda_bench: %s\n", model.error().message.c_str());
    std::exit(1);
  }
  c.model = std::move(*model);
  c.cache = c.model->make_kv_cache(blocks);
  c.be->synchronize();
  return c;
}

// Issues one forward pass (no wait); exits on an input error.
void issue(engine_copy& c, const step_input& in) {
  if (auto out = c.model->forward_device(in, *c.cache); !out) {
    std::fprintf(stderr, "cuda_bench: %s\n", out.error().message.c_str());
    std::exit(1);
  }
}

// Median host seconds of f over `reps` calls after two unmeasured ones (f synchronizes itself).
template <class F>
double median_seconds(int reps, F&& f) {
  std::vector<double> t;
  for (int r = 0; r < reps + 2; ++r) {
    const auto start = std::chrono::steady_clock::now();
    f();
    if (r >= 2) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return median(t);
}

}  // namespace

void overlap_bench(const config::model_config& cfg, const std::string& label, int prompt_rows, int decode_rows,
                   int context) {
  const int64_t block_size = 16;
  const int chunks = 2;  // the prompt rows as two prompts of half each
  std::vector<seq_shape> p_seqs(size_t(chunks), seq_shape{prompt_rows / chunks, prompt_rows / chunks});
  std::vector<seq_shape> d_seqs(size_t(decode_rows), seq_shape{1, context});
  const step_input p = make_step(p_seqs, block_size, 0, cfg.vocab_size);
  int32_t p_blocks = 0;
  for (const auto& s : p_seqs) p_blocks += int32_t((s.context + block_size - 1) / block_size);
  const step_input d = make_step(d_seqs, block_size, p_blocks, cfg.vocab_size);
  const step_input mixed = join(p, d);
  const int64_t blocks = p_blocks + int64_t(decode_rows) * ((context + block_size - 1) / block_size) + 1;
  for (bool priority : {false, true}) {
    engine_copy a = make_copy(cfg, blocks, false), b = make_copy(cfg, blocks, priority);
    const double t_mixed = median_seconds(5, [&] { issue(a, mixed); a.be->synchronize(); });
    const double t_p = median_seconds(5, [&] { issue(a, p); a.be->synchronize(); });
    const double t_d = median_seconds(5, [&] { issue(b, d); b.be->synchronize(); });
    const double t_both = median_seconds(5, [&] {
      issue(b, d);
      issue(a, p);
      a.be->synchronize();
      b.be->synchronize();
    });
    const double t_both_p_first = median_seconds(5, [&] {
      issue(a, p);
      issue(b, d);
      a.be->synchronize();
      b.be->synchronize();
    });
    std::printf("\n| %s, %d prompt rows + %d decode rows of %d context%s | ms |\n| --- | --- |\n", label.c_str(),
                prompt_rows, decode_rows, context, priority ? ", decode stream high priority" : "");
    std::printf("| mixed step (one pass, today) | %.2f |\n| prompt pass alone | %.2f |\n| decode pass alone | %.2f |\n",
                t_mixed * 1e3, t_p * 1e3, t_d * 1e3);
    std::printf("| both passes, two streams, decode issued first | %.2f (%.0f%% of the mixed step) |\n", t_both * 1e3,
                100.0 * t_both / t_mixed);
    std::printf("| both passes, two streams, prompt issued first | %.2f (%.0f%% of the mixed step) |\n",
                t_both_p_first * 1e3, 100.0 * t_both_p_first / t_mixed);
  }
}

}  // namespace troupe::bench
