// CUDA benchmark: the card's copy bandwidth and bf16 GEMM rate, then decode-1 (128-token prompt,
// 256 greedy tokens) and prefill-2k of a random-weight Llama (weights drawn on the GPU), each as
// a fraction of its roofline ceiling measured in the same run. Usage:
//   cuda_bench [--shape llama2-7b|llama3-8b] [--decode N] [--prompt N] [--prefill N] [--cublas-gemv]
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/model/llama_model.hpp"
#include "engine/model/sequence_runner.hpp"
#include "kernels/cuda/cuda_backend.hpp"

using namespace troupe;
using namespace troupe::engine;

namespace {

struct options {
  std::string shape = "llama2-7b";
  int prompt = 128, decode = 256, prefill = 2048;
  bool cublas_gemv = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

#define BENCH_CUDA(call)                                                                             \
  do {                                                                                               \
    cudaError_t e_ = (call);                                                                         \
    if (e_ != cudaSuccess) {                                                                         \
      std::fprintf(stderr, "cuda_bench: %s: %s\n", #call, cudaGetErrorString(e_));                   \
      std::exit(1);                                                                                  \
    }                                                                                                \
  } while (0)

// Device-to-device copy of 2 GiB, counting bytes read plus written; median of 10.
double copy_bandwidth() {
  const size_t bytes = size_t{2} << 30;
  void *a = nullptr, *b = nullptr;
  BENCH_CUDA(cudaMalloc(&a, bytes));
  BENCH_CUDA(cudaMalloc(&b, bytes));
  BENCH_CUDA(cudaMemset(a, 1, bytes));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> rates;
  for (int i = 0; i < 12; ++i) {
    cudaEventRecord(e0);
    BENCH_CUDA(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i >= 2) rates.push_back(2.0 * double(bytes) / (ms * 1e-3));
  }
  cudaFree(a);
  cudaFree(b);
  return median(rates);
}

// cuBLAS bf16 GEMM 8192 x 8192 x 8192 with float32 accumulation on random data; median of 10.
double gemm_rate() {
  const int n = 8192;
  auto be = kernels::make_cuda_backend(0, kernels::dtype::bf16);
  kernels::cuda_set_dummy_weights(*be, 99);
  auto a = be->upload_weight(kernels::dtype::bf16, nullptr, {n, n});
  auto b = be->upload_weight(kernels::dtype::bf16, nullptr, {n, n});
  auto c = be->alloc({n, n});
  be->synchronize();
  cublasHandle_t h;
  cublasCreate(&h);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  const float alpha = 1, beta = 0;
  std::vector<double> rates;
  for (int i = 0; i < 12; ++i) {
    cudaEventRecord(e0);
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a.data, CUDA_R_16BF, n, b.data, CUDA_R_16BF, n, &beta,
                 c.data, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i >= 2) rates.push_back(2.0 * n * double(n) * n / (ms * 1e-3));
  }
  cublasDestroy(h);
  return median(rates);
}

config::model_config shape_of(const std::string& name) {
  config::model_config c;
  c.architecture_name = "LlamaForCausalLM";
  c.hidden_size = 4096;
  c.num_hidden_layers = 32;
  c.num_attention_heads = 32;
  c.head_dim = 128;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  if (name == "llama3-8b") {
    c.intermediate_size = 14336;
    c.num_key_value_heads = 8;
    c.vocab_size = 128256;
    c.rope_theta = 500000.0;
    c.max_position_embeddings = 8192;
  } else {
    c.intermediate_size = 11008;
    c.num_key_value_heads = 32;
    c.vocab_size = 32000;
  }
  return c;
}

int64_t layer_parameters(const config::model_config& c) {
  return c.hidden_size * c.head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads) +
         3 * c.hidden_size * c.intermediate_size + 2 * c.hidden_size;
}

int64_t parameters(const config::model_config& c) {
  return 2 * c.vocab_size * c.hidden_size + c.num_hidden_layers * layer_parameters(c) + c.hidden_size;
}

int argmax(const std::vector<float>& v) { return int(std::max_element(v.begin(), v.end()) - v.begin()); }

std::vector<int32_t> random_ids(int n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> pick(3, int32_t(vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = pick(rng);
  return ids;
}

// Greedy generation of `steps` tokens after the prompt; returns the decode seconds.
double decode_run(llama_model& model, kv_cache& cache, const std::vector<int32_t>& prompt, int steps) {
  sequence_runner runner(model, cache);
  auto logits = runner.feed(prompt);
  if (!logits) {
    std::fprintf(stderr, "cuda_bench: %s\n", logits.error().message.c_str());
    std::exit(1);
  }
  int32_t next = argmax(*logits);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) {
    logits = runner.feed(std::span<const int32_t>(&next, 1));
    if (!logits) std::exit(1);
    next = argmax(*logits);
  }
  return seconds_since(start);
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--shape") opt.shape = next();
    else if (a == "--prompt") opt.prompt = std::atoi(next().c_str());
    else if (a == "--decode") opt.decode = std::atoi(next().c_str());
    else if (a == "--prefill") opt.prefill = std::atoi(next().c_str());
    else if (a == "--cublas-gemv") opt.cublas_gemv = true;
    else {
      std::fprintf(stderr, "usage: cuda_bench [--shape llama2-7b|llama3-8b] [--prompt N] [--decode N] [--prefill N] "
                           "[--cublas-gemv]\n");
      return 2;
    }
  }
  std::string why;
  auto be = kernels::make_cuda_backend(0, kernels::dtype::bf16, &why);
  if (!be) {
    std::fprintf(stderr, "cuda_bench: no usable GPU: %s\n", why.c_str());
    return 1;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const double bw = copy_bandwidth();
  const double flops = gemm_rate();
  std::printf("card %s: copy bandwidth %.0f GB/s, bf16 GEMM %.0f TFLOP/s\n", prop.name, bw / 1e9, flops / 1e12);

  const auto cfg = shape_of(opt.shape);
  kernels::cuda_set_dummy_weights(*be, 1234);
  auto getter = [](const std::string&, const std::vector<int64_t>&) -> expected<llama_model::host_weight> {
    return llama_model::host_weight{kernels::dtype::bf16, nullptr};
  };
  const auto load_start = std::chrono::steady_clock::now();
  auto model = llama_model::build(cfg, *be, getter, nullptr);
  if (!model) {
    std::fprintf(stderr, "cuda_bench: %s\n", model.error().message.c_str());
    return 1;
  }
  be->synchronize();
  const int64_t params = parameters(cfg);
  const double weight_bytes = 2.0 * double(params);
  std::printf("model %s: %.2fB parameters (%.2f GB bf16), drawn on the GPU in %.1f s\n", opt.shape.c_str(),
              double(params) / 1e9, weight_bytes / 1e9, seconds_since(load_start));
  if (opt.cublas_gemv) kernels::cuda_use_own_gemv(*be, false);

  // decode-1: warm-up, then the timed run.
  auto cache = (*model)->make_kv_cache_for_tokens(std::max(opt.prompt + opt.decode, opt.prefill) + 16);
  const auto prompt = random_ids(opt.prompt, cfg.vocab_size, 42);
  decode_run(**model, *cache, prompt, 16);
  std::vector<double> decode_rates;
  for (int r = 0; r < 2; ++r) decode_rates.push_back(opt.decode / decode_run(**model, *cache, prompt, opt.decode));
  const double tok_s = *std::max_element(decode_rates.begin(), decode_rates.end());
  // Bytes a decode step must read: every weight except the embedding table (one row), plus the KV
  // cache of the context, on average half the generated tokens past the prompt.
  const double kv_per_token = 2.0 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * 2;
  const double step_bytes = weight_bytes - 2.0 * cfg.vocab_size * cfg.hidden_size +
                            kv_per_token * (opt.prompt + opt.decode / 2.0);
  const double ceiling = bw / step_bytes;

  // prefill-2k: one prompt through a fresh sequence, 1 new token; median of 3 after a warm-up.
  const auto long_prompt = random_ids(opt.prefill, cfg.vocab_size, 43);
  std::vector<double> prefill_times;
  for (int r = 0; r < 4; ++r) {
    sequence_runner runner(**model, *cache);
    const auto start = std::chrono::steady_clock::now();
    auto logits = runner.feed(long_prompt);
    if (!logits) return 1;
    if (r > 0) prefill_times.push_back(seconds_since(start));
  }
  const double t_prefill = median(prefill_times);
  const double prefill_flops = 2.0 * double(params) * opt.prefill;
  const std::string err = kernels::cuda_backend_error(*be);
  if (!err.empty()) {
    std::fprintf(stderr, "cuda_bench: backend error: %s\n", err.c_str());
    return 1;
  }
  std::printf("\n| %s bf16 on %s | measured | ceiling | fraction |\n| --- | --- | --- | --- |\n", opt.shape.c_str(),
              prop.name);
  std::printf("| decode-1 (%d prompt, %d new, %s gemv) | %.1f tok/s | %.1f tok/s (%.0f GB/s / %.2f GB per step) | %.1f%% |\n",
              opt.prompt, opt.decode, opt.cublas_gemv ? "cuBLAS" : "own", tok_s, ceiling, bw / 1e9, step_bytes / 1e9,
              100.0 * tok_s / ceiling);
  std::printf("| prefill-%d | %.0f tok/s (%.1f ms, %.0f TFLOP/s at 2*P*T) | %.0f TFLOP/s GEMM | %.1f%% |\n", opt.prefill,
              opt.prefill / t_prefill, t_prefill * 1e3, prefill_flops / t_prefill / 1e12, flops / 1e12,
              100.0 * prefill_flops / t_prefill / flops);
  return 0;
}
