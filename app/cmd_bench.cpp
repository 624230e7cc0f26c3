// `troupe bench offline`: the offline-256 reference workload (PERFORMANCE.md) in-process through
// engine::llm, on a real model or random weights of a named shape (drawn on the GPU, as vLLM's dummy
// load), with tokens/s, requests/s and the fraction of the roofline measured on the card.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "app/commands.hpp"
#include "app/progress.hpp"
#include "config/model_config.hpp"
#include "engine/core/llm.hpp"
#include "engine/model/llama_model.hpp"
#include "engine/model/reference_shapes.hpp"
#include "engine/tokenizer/tokenizer.hpp"
#include "kernels/backend_factory.hpp"
#include "kernels/cuda/cuda_backend.hpp"

namespace troupe::app {

namespace {

struct bench_args {
  std::string model;
  std::string dummy;  // llama2-7b or llama3-8b
  std::string device = "auto";
  std::string dtype = "auto";
  int num_prompts = 256;
  int output_len = 256;
  int min_prompt = 64;
  int max_prompt = 1024;
  int seed = 42;
  int threads = 0;
  int profile_requests = 0;  // after the run: a profiled decode of this many requests
  bool profile_run = false;  // time every op of the run itself (slower: events around each op)
  engine::llm_options engine;
};

/// Python's random.Random(seed) for seeds below 2^32: MT19937 seeded by init_by_array([seed]),
/// randint and randrange as Python 3 draws them (getrandbits with rejection), so the workload is
/// the one ../shared/peer/hf_peer.py draws.
class python_random {
 public:
  explicit python_random(uint32_t seed) {
    init(19650218u);
    uint32_t i = 1, j = 0;
    const uint32_t key[1] = {seed};
    for (int k = n; k > 0; --k) {
      mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525u)) + key[j] + j;
      ++i;
      j = 0;  // the key has one word
      if (i >= n) {
        mt_[0] = mt_[n - 1];
        i = 1;
      }
    }
    for (int k = n - 1; k > 0; --k) {
      mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941u)) - i;
      ++i;
      if (i >= n) {
        mt_[0] = mt_[n - 1];
        i = 1;
      }
    }
    mt_[0] = 0x80000000u;
    index_ = n;
  }
  /// randint(a, b): a uniform integer in [a, b].
  int64_t randint(int64_t a, int64_t b) { return a + below(uint32_t(b - a + 1)); }
  /// randrange(a, b): a uniform integer in [a, b).
  int64_t randrange(int64_t a, int64_t b) { return a + below(uint32_t(b - a)); }

 private:
  static constexpr int n = 624, m = 397;
  void init(uint32_t s) {
    mt_[0] = s;
    for (int i = 1; i < n; ++i) mt_[size_t(i)] = 1812433253u * (mt_[size_t(i - 1)] ^ (mt_[size_t(i - 1)] >> 30)) + uint32_t(i);
  }
  uint32_t next() {
    if (index_ >= n) {
      for (int k = 0; k < n; ++k) {
        const uint32_t y = (mt_[size_t(k)] & 0x80000000u) | (mt_[size_t((k + 1) % n)] & 0x7fffffffu);
        mt_[size_t(k)] = mt_[size_t((k + m) % n)] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
      }
      index_ = 0;
    }
    uint32_t y = mt_[size_t(index_++)];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
  }
  int64_t below(uint32_t limit) {  // _randbelow_with_getrandbits, limit < 2^32
    int bits = 0;
    for (uint32_t v = limit; v != 0; v >>= 1) ++bits;
    uint32_t r = next() >> (32 - bits);
    while (r >= limit) r = next() >> (32 - bits);
    return r;
  }
  std::array<uint32_t, n> mt_{};
  int index_ = n;
};

// A tokenizer for dummy models: the ids are random, so their text is nothing (unknown ids decode to "").
constexpr const char* empty_tokenizer_json =
    R"({"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,)"
    R"("pre_tokenizer":null,"post_processor":null,"decoder":null,"model":{"type":"BPE","dropout":null,)"
    R"("unk_token":"<unk>","continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,)"
    R"("byte_fallback":false,"vocab":{"<unk>":0},"merges":[]}})";

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int run_offline(const bench_args& a) {
  const bool dummy = !a.dummy.empty();
  if (dummy == !a.model.empty()) {
    std::fprintf(stderr, "troupe bench offline: give --model DIR or --dummy SHAPE (one of them)\n");
    return 2;
  }
  if (a.num_prompts < 1 || a.output_len < 1 || a.min_prompt < 1 || a.max_prompt < a.min_prompt) {
    std::fprintf(stderr, "troupe bench offline: need --num-prompts, --output-len >= 1 and 1 <= --min-prompt <= --max-prompt\n");
    return 2;
  }
  auto cfg = dummy ? engine::reference_shape(a.dummy) : config::load_model_config(a.model);
  if (!cfg) {
    std::fprintf(stderr, "troupe: %s\n", cfg.error().message.c_str());
    return 1;
  }
  auto compute = kernels::parse_compute_dtype(a.dtype, dummy ? std::string("bfloat16") : cfg->dtype);
  if (!compute) {
    std::fprintf(stderr, "troupe: %s\n", compute.error().message.c_str());
    return 2;
  }
  const int threads = a.threads > 0 ? a.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  std::string note;
  auto backend = kernels::make_backend(a.device, *compute, threads, &note);
  if (!backend) {
    std::fprintf(stderr, "troupe: %s\n", backend.error().message.c_str());
    return 1;
  }
  kernels::backend& be = **backend;
  std::printf("%s\n", note.c_str());
  size_t free_bytes = 0, total_bytes = 0;
  const bool gpu = be.memory_info(free_bytes, total_bytes);
  const double bw = gpu ? kernels::cuda_copy_bandwidth(be) : 0;
  const double flops = gpu ? kernels::cuda_gemm_rate(be) : 0;
  if (gpu) std::printf("card: copy bandwidth %.0f GB/s (read + write), bf16 GEMM %.0f TFLOP/s\n", bw / 1e9, flops / 1e12);

  const auto load_start = std::chrono::steady_clock::now();
  expected<std::unique_ptr<engine::llama_model>> model = make_error("no model");
  if (dummy && gpu) {
    kernels::cuda_set_dummy_weights(be, 1234);  // weights drawn on the GPU, no host data
    auto getter = [&](const std::string&, const std::vector<int64_t>&) -> expected<engine::llama_model::host_weight> {
      return engine::llama_model::host_weight{*compute, nullptr};
    };
    model = engine::llama_model::build(*cfg, be, getter, nullptr, weights_progress_bar());
  } else if (dummy) {
    model = engine::llama_model::random(*cfg, 1234, be);
  } else {
    model = engine::llama_model::load(a.model, be, weights_progress_bar());
  }
  if (!model) {
    std::fprintf(stderr, "troupe: cannot make the model: %s\n", model.error().message.c_str());
    return 1;
  }
  be.synchronize();
  const auto& mc = (*model)->config();
  const int64_t params = engine::parameter_count(mc);
  const double elem = double(kernels::dtype_size(be.compute_type()));
  std::printf("model %s: %.2fB parameters, %s, ready in %.1f s\n", dummy ? a.dummy.c_str() : a.model.c_str(),
              double(params) / 1e9, std::string(kernels::to_string(be.compute_type())).c_str(), seconds_since(load_start));

  auto tok = dummy ? engine::tokenizer::from_json(empty_tokenizer_json, "dummy") : engine::tokenizer::load(a.model);
  if (!tok) {
    std::fprintf(stderr, "troupe: cannot load the tokenizer: %s\n", tok.error().message.c_str());
    return 1;
  }
  auto llm = engine::llm::create(**model, *tok, a.engine);
  if (!llm) {
    std::fprintf(stderr, "troupe: %s\n", llm.error().message.c_str());
    return 1;
  }
  const auto& so = (*llm)->options();
  std::printf("engine: %d KV blocks of %d (%lld tokens), max_num_seqs %d, max_num_batched_tokens %d\n", so.num_blocks,
              so.block_size, (long long)so.num_blocks * so.block_size, so.max_num_seqs, so.max_num_batched_tokens);

  // The workload: Python random.Random(seed), randint(min, max) tokens per prompt, ids randrange(3, 32000).
  const int64_t id_end = std::min<int64_t>(32000, mc.vocab_size);
  python_random rng(uint32_t(a.seed));
  std::vector<engine::llm_request> reqs(size_t(a.num_prompts));
  int64_t prompt_tokens = 0;
  double kv_reads = 0;  // context tokens the decode steps read, summed over every sampled token
  for (auto& r : reqs) {
    const int64_t len = rng.randint(a.min_prompt, a.max_prompt);
    r.prompt_ids.resize(size_t(len));
    for (auto& id : r.prompt_ids) id = int32_t(rng.randrange(3, id_end));
    r.params.max_tokens = a.output_len;
    r.params.ignore_eos = true;
    r.params.sampling.temperature = 0.0f;
    prompt_tokens += len;
    // the first output token comes from the prefill; output token j (j >= 1) reads len + j - 1 keys
    for (int j = 1; j < a.output_len; ++j) kv_reads += double(len + j);
  }
  std::printf("workload: %d prompts, mean %.2f tokens (%lld in all; the first %zu tokens, ids %d %d %d ...), %d output "
              "tokens each, greedy, ignore_eos\n",
              a.num_prompts, double(prompt_tokens) / a.num_prompts, (long long)prompt_tokens, reqs[0].prompt_ids.size(),
              reqs[0].prompt_ids[0], reqs[0].prompt_ids.size() > 1 ? reqs[0].prompt_ids[1] : -1,
              reqs[0].prompt_ids.size() > 2 ? reqs[0].prompt_ids[2] : -1, a.output_len);

  {  // warm-up: a few short requests (other ids, so the prefix cache does not help the run)
    std::mt19937 warm(7);
    std::vector<engine::llm_request> w(4);
    for (auto& r : w) {
      r.prompt_ids.resize(96);
      for (auto& id : r.prompt_ids) id = int32_t(3 + warm() % uint32_t(id_end - 3));
      r.params.max_tokens = 8;
      r.params.ignore_eos = true;
      r.params.sampling.temperature = 0.0f;
    }
    (*llm)->generate(w);
    be.synchronize();
  }

  // cuBLASLt algorithms are chosen at each product shape's first call (kernels/cuda/lt_matmul): what
  // the warm-up settled, and (after the run) what the run itself spent on it.
  if (gpu) std::printf("after the warm-up, %s", kernels::cuda_matmul_report(be).c_str());
  const uint64_t steps_before = (*llm)->steps(), tokens_before = (*llm)->computed_tokens();
  const uint64_t preemptions_before = (*llm)->engine_scheduler().stats().preemptions;
  // Each step's own floor, PERFORMANCE.md's roofline applied step by step: the larger of its bytes
  // (the weights once, plus the K/V of every scheduled request's context once) and its FLOPs.
  const double weights = double(params) * elem;
  const double kv_token = 2.0 * double(mc.num_hidden_layers) * double(mc.num_key_value_heads) * double(mc.head_dim) * elem;
  double per_step_floor = 0;
  int64_t flop_bound_steps = 0;
  if (gpu && bw > 0 && flops > 0)
    (*llm)->set_step_observer([&](const engine::schedule_output& step) {
      double keys = 0;
      for (const auto& r : step.new_requests) keys += r.num_computed_tokens;
      for (const auto& r : step.cached_requests) keys += r.num_computed_tokens;
      for (const auto& r : step.scheduled) keys += r.num_tokens;
      const double t_bytes = (weights + keys * kv_token) / bw;
      const double t_flops = 2.0 * double(params) * double(step.total_num_scheduled_tokens) / flops;
      per_step_floor += std::max(t_bytes, t_flops);
      flop_bound_steps += t_flops > t_bytes ? 1 : 0;
    });
  if (a.profile_run && gpu) kernels::cuda_profile(be, true);
  const auto start = std::chrono::steady_clock::now();
  auto outs = (*llm)->generate(reqs);
  be.synchronize();
  const double seconds = seconds_since(start);
  (*llm)->set_step_observer(nullptr);
  if (a.profile_run && gpu) {
    kernels::cuda_profile(be, false);
    std::printf("the run's ops, each timed with CUDA events (this makes the run slower):\n%s\n",
                kernels::cuda_profile_report(be).c_str());
  }
  const uint64_t steps = (*llm)->steps() - steps_before;
  int64_t out_tokens = 0;
  int errors = 0;
  for (const auto& o : outs) {
    if (!o.error.empty()) ++errors;
    for (const auto& s : o.samples) {
      out_tokens += int64_t(s.output_ids.size());
      if (s.finish_reason != "length") ++errors;
    }
  }
  if (std::string err = be.last_error(); !err.empty()) {
    std::fprintf(stderr, "troupe: the GPU failed during the run: %s\n", err.c_str());
    return 1;
  }
  std::printf("run: %.2f s, %llu steps, %lld output tokens, %d requests not ending by length\n", seconds,
              (unsigned long long)steps, (long long)out_tokens, errors);
  // Each request computes its prompt and every output token but the last; more is recomputation of
  // preempted requests (their blocks were taken when the cache ran out).
  const auto computed = int64_t((*llm)->computed_tokens() - tokens_before);
  const int64_t needed = prompt_tokens + out_tokens - a.num_prompts;
  std::printf("scheduler: %llu preemptions; %lld tokens computed, %lld of them (%.1f%%) recomputed after preemption\n",
              (unsigned long long)((*llm)->engine_scheduler().stats().preemptions - preemptions_before),
              (long long)computed, (long long)(computed - needed), 100.0 * double(computed - needed) / double(needed));
  if (gpu) std::printf("after the run, %s", kernels::cuda_matmul_report(be).c_str());
  std::printf("output tokens/s %.1f | requests/s %.3f | total tokens/s %.1f\n", double(out_tokens) / seconds,
              a.num_prompts / seconds, double(out_tokens + prompt_tokens) / seconds);
  if (gpu && bw > 0 && flops > 0) {
    // Floors over the run: every step reads the weights once (W, the steps this run took) and each
    // decode token reads its context's K/V once; every prompt and output token costs 2P FLOPs. The
    // time can be no less than the larger of the two sums (each step's max summed is at least that).
    const double t_bytes = (double(steps) * weights + kv_reads * kv_token) / bw;
    const double t_flops = 2.0 * double(params) * double(prompt_tokens + out_tokens) / flops;
    const double floor = std::max(t_bytes, t_flops);
    std::printf("roofline: bytes %.2f s (%llu steps x %.2f GB weights + %.1f GB K/V reads at %.0f GB/s), FLOPs %.2f s "
                "(at %.0f TFLOP/s); floor %.2f s = %.1f%% of the measured time; ceiling %.0f output tok/s\n",
                t_bytes, (unsigned long long)steps, weights / 1e9, kv_reads * kv_token / 1e9, bw / 1e9, t_flops,
                flops / 1e12, floor, 100.0 * floor / seconds, double(out_tokens) / floor);
    // The floor above counts the steps this run took, so a schedule of more steps raises its own
    // floor. The fewest steps any schedule could take (a cache with room for every request): the
    // prompts at max_num_batched_tokens a step, then output_len - 1 decode steps.
    const int64_t budget = so.max_num_batched_tokens;
    const int64_t fewest = (prompt_tokens + budget - 1) / budget + a.output_len - 1;
    const double floor_fewest = std::max((double(fewest) * weights + kv_reads * kv_token) / bw, t_flops);
    std::printf("roofline with the fewest steps any schedule could take (%lld): floor %.2f s = %.1f%% of the measured "
                "time\n", (long long)fewest, floor_fewest, 100.0 * floor_fewest / seconds);
    // The floors above let the run's FLOPs hide under its bytes across steps; a step's own floor
    // cannot (a prompt chunk's products and a decode step's reads are different steps).
    std::printf("roofline step by step (each step's max of bytes and FLOPs, summed; %lld of %llu steps FLOP-bound): "
                "floor %.2f s = %.1f%% of the measured time\n",
                (long long)flop_bound_steps, (unsigned long long)steps, per_step_floor, 100.0 * per_step_floor / seconds);
    std::printf("RESULT offline out_tok_s=%.1f req_s=%.3f seconds=%.2f steps=%llu roofline_fraction=%.3f "
                "ceiling_tok_s=%.0f bw_GBps=%.0f gemm_TFLOPs=%.0f kv_tokens=%lld roofline_fraction_fewest_steps=%.3f "
                "roofline_fraction_per_step=%.3f\n",
                double(out_tokens) / seconds, a.num_prompts / seconds, seconds, (unsigned long long)steps,
                floor / seconds, double(out_tokens) / floor, bw / 1e9, flops / 1e12,
                (long long)so.num_blocks * so.block_size, floor_fewest / seconds, per_step_floor / seconds);
  } else {
    std::printf("RESULT offline out_tok_s=%.1f req_s=%.3f seconds=%.2f steps=%llu\n", double(out_tokens) / seconds,
                a.num_prompts / seconds, seconds, (unsigned long long)steps);
  }

  if (a.profile_requests > 0 && gpu) {
    // A steady decode: profile_requests requests of 128-token prompts, 128 output tokens, every op
    // timed with CUDA events; busy = op time over the span from the first op's start to the last's end.
    std::mt19937 pr(11);
    std::vector<engine::llm_request> p(size_t(a.profile_requests));
    for (auto& r : p) {
      r.prompt_ids.resize(128);
      for (auto& id : r.prompt_ids) id = int32_t(3 + pr() % uint32_t(id_end - 3));
      r.params.max_tokens = 128;
      r.params.ignore_eos = true;
      r.params.sampling.temperature = 0.0f;
    }
    kernels::cuda_profile(be, true);
    const auto ps = std::chrono::steady_clock::now();
    (*llm)->generate(p);
    be.synchronize();
    const double pt = seconds_since(ps);
    kernels::cuda_profile(be, false);
    std::printf("profiled decode of %d requests (128 in, 128 out, ops timed): %.2f s, %.1f output tok/s\n%s\n",
                a.profile_requests, pt, a.profile_requests * 128.0 / pt, kernels::cuda_profile_report(be).c_str());
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "In-process benchmarks of the engine");
  bench->require_subcommand(1);
  auto args = std::make_shared<bench_args>();
  auto* cmd = bench->add_subcommand("offline", "The offline reference workload (PERFORMANCE.md's offline-256)");
  auto* model = cmd->add_option("--model", args->model, "Hugging Face model folder");
  auto* dummy = cmd->add_option("--dummy", args->dummy, "Random weights of a shape: llama2-7b or llama3-8b");
  model->excludes(dummy);
  cmd->add_option("--device", args->device, "cpu, cuda, cuda:N, or auto")->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "CUDA compute type: auto, bfloat16 or float16")->capture_default_str();
  cmd->add_option("--num-prompts", args->num_prompts, "Requests")->capture_default_str();
  cmd->add_option("--output-len", args->output_len, "Output tokens per request")->capture_default_str();
  cmd->add_option("--min-prompt", args->min_prompt, "Shortest prompt")->capture_default_str();
  cmd->add_option("--max-prompt", args->max_prompt, "Longest prompt")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Workload seed (Python random.Random semantics)")->capture_default_str();
  cmd->add_option("--threads", args->threads, "CPU threads (CPU backend)");
  cmd->add_option("--gpu-memory-utilization", args->engine.gpu_memory_utilization,
                  "Fraction of the GPU's memory the engine may use (KV cache sized from what is left)")
      ->capture_default_str();
  cmd->add_option("--kv-cache-blocks", args->engine.kv_cache_blocks, "KV blocks (0: sized automatically)")
      ->capture_default_str();
  cmd->add_option("--max-num-seqs", args->engine.max_num_seqs, "Sequences per step at most")->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", args->engine.max_num_batched_tokens, "Tokens per step at most")
      ->capture_default_str();
  cmd->add_option("--admission-reserve", args->engine.admission_reserve,
                  "Fraction of the running requests' room to grow that admission keeps free (0: admit what fits now)")
      ->capture_default_str();
  cmd->add_option("--steps-in-flight", args->engine.steps_in_flight,
                  "Scheduler steps planned ahead of their results (1: one at a time)")
      ->capture_default_str();
  cmd->add_flag("--profile-run", args->profile_run,
               "Time every op of the run with CUDA events and print where the GPU time went (slows the run)");
  cmd->add_option("--profile-decode", args->profile_requests,
                  "After the run, time every op of a decode of this many requests (GPU busy fraction)");
  cmd->callback([args] { std::exit(run_offline(*args)); });
}

}  // namespace troupe::app
