// CPU forward-pass benchmark: prefill and batch-1 decode tokens/s on stories260k and a ~100M random Llama.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/model/llama_model.hpp"
#include "engine/model/sequence_runner.hpp"

using namespace troupe;
using namespace troupe::engine;

namespace {

struct options {
  std::string model = TROUPE_DEFAULT_MODEL;  // "" skips the real model
  bool random_100m = true;
  int prompt = 128;
  int decode = 128;
  int repeats = 3;
  int threads = 0;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The ~100M-parameter Llama shape of the benchmark (GPT-2-small sized, tied embeddings).
config::model_config shape_100m() {
  config::model_config cfg;
  cfg.architecture_name = "LlamaForCausalLM";
  cfg.hidden_size = 768;
  cfg.intermediate_size = 2048;
  cfg.num_hidden_layers = 12;
  cfg.num_attention_heads = 12;
  cfg.num_key_value_heads = 12;
  cfg.head_dim = 64;
  cfg.vocab_size = 32000;
  cfg.max_position_embeddings = 2048;
  cfg.tie_word_embeddings = true;
  return cfg;
}

int64_t parameters(const config::model_config& c) {
  int64_t layer = c.hidden_size * c.head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads) +
                  3 * c.hidden_size * c.intermediate_size + 2 * c.hidden_size;
  return c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * layer +
         c.hidden_size;
}

// The machine's limits, measured: read bandwidth (every thread sums its share of a 512 MiB buffer:
// decode streams the weights much like this) and the float32 matrix rate (a 1024 x 1024 x 1024
// product through the backend).
struct machine_limits {
  double read_bytes_per_s = 0;
  double matmul_flops_per_s = 0;
};

machine_limits measure_limits(kernels::backend& be, int threads) {
  machine_limits lim;
  std::vector<float> data(128u << 20, 1.0f);
  const size_t share = data.size() / size_t(threads);
  std::vector<double> sums(static_cast<size_t>(threads));
  for (int r = 0; r < 5; ++r) {
    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&, t] {
        float acc[16] = {};
        const float* p = data.data() + size_t(t) * share;
        for (size_t i = 0; i + 16 <= share; i += 16)
          for (int j = 0; j < 16; ++j) acc[j] += p[i + size_t(j)];
        double s = 0;
        for (float x : acc) s += x;
        sums[size_t(t)] = s;
      });
    for (auto& w : workers) w.join();
    lim.read_bytes_per_s = std::max(lim.read_bytes_per_s, double(share * size_t(threads) * sizeof(float)) / seconds_since(start));
  }
  if (sums[0] != double(share)) std::fprintf(stderr, "bandwidth check: wrong sum\n");
  const int64_t n = 1024;
  std::vector<float> host(size_t(n * n), 0.5f);
  kernels::tensor a = be.alloc({n, n}), b = be.alloc({n, n}), c = be.alloc({n, n});
  be.copy_to_device(host, a);
  be.copy_to_device(host, b);
  for (int r = 0; r < 5; ++r) {
    auto start = std::chrono::steady_clock::now();
    be.matmul(a, b, nullptr, c);
    be.synchronize();
    lim.matmul_flops_per_s = std::max(lim.matmul_flops_per_s, 2.0 * double(n * n * n) / seconds_since(start));
  }
  return lim;
}

// Best-of-repeats prefill and decode rates of one model, beside the ceilings the limits give:
// prefill <= matmul rate / (2 * parameters), decode <= read bandwidth / (4 bytes * parameters).
int run(const char* label, llama_model& model, const options& opt, const machine_limits& lim) {
  const auto& cfg = model.config();
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(3, static_cast<int32_t>(cfg.vocab_size - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(opt.prompt));
  for (auto& id : prompt) id = pick(rng);
  auto cache = model.make_kv_cache_for_tokens(opt.prompt + opt.decode);
  sequence_runner runner(model, *cache);
  double best_prefill = 0, best_decode = 0;
  for (int r = 0; r < opt.repeats; ++r) {
    runner.reset();
    auto start = std::chrono::steady_clock::now();
    auto logits = runner.feed(prompt);
    double prefill_s = seconds_since(start);
    if (!logits) {
      std::fprintf(stderr, "%s: %s\n", label, logits.error().message.c_str());
      return 1;
    }
    start = std::chrono::steady_clock::now();
    for (int i = 0; i < opt.decode; ++i) {
      int32_t next = static_cast<int32_t>(std::max_element(logits->begin(), logits->end()) - logits->begin());
      std::vector<int32_t> one = {next};
      logits = runner.feed(one);
      if (!logits) {
        std::fprintf(stderr, "%s: %s\n", label, logits.error().message.c_str());
        return 1;
      }
    }
    double decode_s = seconds_since(start);
    best_prefill = std::max(best_prefill, opt.prompt / prefill_s);
    best_decode = std::max(best_decode, opt.decode / decode_s);
  }
  const double params = double(parameters(cfg));
  std::printf("| %s | %.1fM | %d | %.0f | %.0f | %d | %.1f | %.1f |\n", label, params / 1e6, opt.prompt,
              best_prefill, lim.matmul_flops_per_s / (2 * params), opt.decode, best_decode,
              lim.read_bytes_per_s / (4 * params));
  std::fflush(stdout);
  return 0;
}

int parse(int argc, char** argv, options& opt) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") opt.model = value();
    else if (a == "--no-model") opt.model.clear();
    else if (a == "--no-random") opt.random_100m = false;
    else if (a == "--prompt") opt.prompt = std::atoi(value());
    else if (a == "--decode") opt.decode = std::atoi(value());
    else if (a == "--repeats") opt.repeats = std::atoi(value());
    else if (a == "--threads") opt.threads = std::atoi(value());
    else {
      std::fprintf(stderr,
                   "usage: cpu_forward_bench [--model DIR | --no-model] [--no-random] [--prompt N] "
                   "[--decode N] [--repeats N] [--threads N]\n");
      return 2;
    }
  }
  if (opt.prompt < 1 || opt.decode < 0 || opt.repeats < 1) {
    std::fprintf(stderr, "--prompt and --repeats must be positive\n");
    return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  if (int rc = parse(argc, argv, opt); rc != 0) return rc;
  auto be = kernels::make_cpu_backend(opt.threads);
  const int threads = opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  machine_limits lim = measure_limits(*be, threads);
  std::printf("machine: %.1f GB/s read, %.1f GFLOP/s float32 matmul, %d threads\n\n",
              lim.read_bytes_per_s / 1e9, lim.matmul_flops_per_s / 1e9, threads);
  std::printf("| model | parameters | prompt tokens | prefill tok/s | prefill ceiling | decode tokens "
              "| decode tok/s (batch 1) | decode ceiling |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
  if (!opt.model.empty()) {
    auto model = llama_model::load(opt.model, *be);
    if (!model) {
      std::fprintf(stderr, "%s\n", model.error().message.c_str());
      return 1;
    }
    if (int rc = run("stories260k", **model, opt, lim); rc != 0) return rc;
  }
  if (opt.random_100m) {
    auto model = llama_model::random(shape_100m(), 1, *be);
    if (!model) {
      std::fprintf(stderr, "%s\n", model.error().message.c_str());
      return 1;
    }
    if (int rc = run("random llama 768x12 (vocab 32000)", **model, opt, lim); rc != 0) return rc;
  }
  return 0;
}
