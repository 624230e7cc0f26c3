// CUDA benchmark: the card's copy bandwidth and bf16 GEMM rate, then decode-1 (128-token prompt,
// 256 greedy tokens) and prefill-2k of a random-weight Llama (weights drawn on the GPU), each as
// a fraction of its roofline ceiling measured in the same run. Usage:
//   cuda_bench [--shape llama2-7b|llama3-8b] [--decode N] [--prompt N] [--prefill N] [--cublas-gemv]
//              [--gemv-variant N] [--ops] [--attention] [--gemm-sweep] [--prefill-attention]
//              [--read-bandwidth] [--overlap PROMPT_ROWS DECODE_ROWS CONTEXT]
// (--gemm-sweep: cuBLAS products at decode-batch and prefill shapes, GemmEx against tuned cuBLASLt;
// --ops: time each op at the decode-1 and prefill-2k shapes instead; --attention: decode attention
// alone on batches of 1, 64 and 256 sequences, MHA and GQA, against the copy bandwidth (ATTENTION_CASE,
// e.g. MHA:256:0, runs one case: what a profiler such as Nsight Compute should look at);
// --prefill-attention: the prefill attention kernel alone, cuda_bench_prefill.cpp; --overlap: a mixed
// step's prompt and decode rows as two passes on two streams, cuda_bench_overlap.cpp; --read-bandwidth:
// reads in order and in random 256/512-byte chunks against the copy bandwidth, cuda_bench_read.cu)
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/cuda_bench_util.hpp"
#include "engine/model/llama_model.hpp"
#include "engine/model/reference_shapes.hpp"
#include "engine/model/sequence_runner.hpp"
#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/lt_matmul.hpp"

using namespace troupe;
using namespace troupe::engine;
using troupe::bench::median;
using troupe::bench::median_call_seconds;
using troupe::bench::per_call;

namespace {

struct options {
  std::string shape = "llama2-7b";
  int prompt = 128, decode = 256, prefill = 2048;
  bool cublas_gemv = false;
  int gemv_variant = 1;
  bool ops = false;
  bool graphs = true;
  bool attention = false;
  bool gemm_sweep = false;
  bool prefill_attention = false;
  bool read_bandwidth = false;
  int overlap[3] = {0, 0, 0};  // prompt rows, decode rows, their context
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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

// out[m, n] = x[m, k] · w[n, k]ᵀ in bf16 with float32 accumulation, called as the backend calls cuBLAS.
void gemm_bf16(cublasHandle_t h, int n, int m, int k, const void* w, const void* x, void* out) {
  const float alpha = 1, beta = 0;
  cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16BF, k, x, CUDA_R_16BF, k, &beta, out,
               CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
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
  const double t = median_call_seconds(10, 2, 1, [&](int) { gemm_bf16(h, n, n, n, a.data, b.data, c.data); });
  cublasDestroy(h);
  return 2.0 * n * double(n) * n / t;
}

// The reference shape named on the command line (an unknown name ends the program).
config::model_config shape_of(const std::string& name) {
  auto c = engine::reference_shape(name);
  if (!c) {
    std::fprintf(stderr, "cuda_bench: %s\n", c.error().message.c_str());
    std::exit(2);
  }
  return *c;
}

int argmax(const std::vector<float>& v) { return int(std::max_element(v.begin(), v.end()) - v.begin()); }

std::vector<int32_t> random_ids(int n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> pick(3, int32_t(vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = pick(rng);
  return ids;
}

// Greedy generation of `steps` tokens after the prompt, the token picked on the GPU (the backend's
// sample op) and each step launched before the last one's token reaches the host, its input token
// taken on the device, as engine::model_runner does; returns the decode seconds.
double decode_run(llama_model& model, kv_cache& cache, const std::vector<int32_t>& prompt, int steps) {
  step_input in;
  in.max_blocks_per_seq = int32_t(cache.num_blocks());
  for (int32_t b = 0; b < in.max_blocks_per_seq; ++b) in.block_tables.push_back(b);
  kernels::sampling_batch greedy;
  greedy.rows.resize(1);
  kernels::sample_result picked;
  int open = -1;  // the sample ticket of the step before, its token still on the device
  int32_t next = 0;
  // TROUPE_OVERLAP=0: each step waits for the last one's token on the host (as before overlap).
  static const bool overlap = !(std::getenv("TROUPE_OVERLAP") && std::string(std::getenv("TROUPE_OVERLAP")) == "0");
  auto feed = [&](std::span<const int32_t> ids, int32_t at) {
    in.token_ids.assign(ids.begin(), ids.end());
    in.fed_ticket = open;
    in.fed_rows.assign(open >= 0 ? 1 : 0, 0);
    in.fed_at.assign(open >= 0 ? 1 : 0, 0);
    in.positions.clear();
    in.slot_mapping.clear();
    for (int32_t i = 0; i < int32_t(ids.size()); ++i) {
      in.positions.push_back(at + i);
      in.slot_mapping.push_back(at + i);  // blocks in order: slot = position
    }
    in.query_start_loc = {0, int32_t(ids.size())};
    in.seq_lens = {at + int32_t(ids.size())};
    in.logits_indices = {int32_t(ids.size()) - 1};
    auto logits = model.forward_device(in, cache);
    if (!logits) {
      std::fprintf(stderr, "cuda_bench: %s\n", logits.error().message.c_str());
      std::exit(1);
    }
    const int ticket = model.backend().sample_begin(*logits, greedy);
    if (open >= 0) model.backend().sample_end(open, picked);
    open = ticket;
    if (!overlap) {
      model.backend().sample_end(open, picked);
      next = picked.tokens.at(0);
      open = -1;
    }
  };
  feed(prompt, 0);
  model.backend().synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) feed(std::span<const int32_t>(&next, 1), int32_t(prompt.size()) + i);
  if (open >= 0) model.backend().sample_end(open, picked);
  return seconds_since(start);
}


// Times every op at the decode-1 and prefill-2k shapes of the config, and sums a layer.
void op_profile(const config::model_config& c, const std::string& label) {
  auto be = kernels::make_cuda_backend(0, kernels::dtype::bf16);
  kernels::cuda_set_dummy_weights(*be, 7);
  const int64_t h = c.hidden_size, inter = c.intermediate_size, d = c.head_dim;
  const int64_t qo = c.num_attention_heads * d, kvo = c.num_key_value_heads * d;
  auto weight = [&](int64_t rows, int64_t cols) { return be->upload_weight(kernels::dtype::bf16, nullptr, {rows, cols}); };
  auto wq = weight(qo, h), wk = weight(kvo, h), wo = weight(h, qo), wg = weight(inter, h), wd = weight(h, inter);
  auto wl = weight(c.vocab_size, h);
  auto norm = be->upload_weight(kernels::dtype::f32, nullptr, {h});
  auto act = [&](int64_t rows, int64_t cols) {
    auto t = be->alloc({rows, cols});
    std::vector<float> v(size_t(rows * cols));
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    for (auto& x : v) x = nd(rng);
    be->copy_to_device(v, t);
    return t;
  };
  std::printf("\nop profile (%s shapes, bf16), microseconds per call, back to back:\n", label.c_str());
  struct mm { const char* name; int64_t m; kernels::tensor* w; };
  double layer_best = 0;
  for (int64_t m : {int64_t{1}, int64_t{2048}}) {
    const mm mms[] = {{"q/o proj", m, &wq}, {"k/v proj", m, &wk}, {"o proj", m, &wo}, {"gate/up", m, &wg},
                      {"down", m, &wd}, {"lm_head", m, &wl}};
    for (const auto& x : mms) {
      auto in = act(x.m, x.w->dims[1]);
      auto out = be->alloc({x.m, x.w->dims[0]});
      const double bytes = 2.0 * double(x.w->numel());
      const double flops = 2.0 * double(x.m) * double(x.w->numel());
      std::printf("  matmul %-8s m=%-5lld n=%-6lld k=%-6lld", x.name, (long long)x.m, (long long)x.w->dims[0],
                  (long long)x.w->dims[1]);
      double best = 1e30;
      for (int v = 0; v <= (x.m == 1 ? 8 : 0); ++v) {
        kernels::cuda_set_gemv_variant(*be, x.m == 1 ? v : 1);
        const double t = per_call(*be, x.m == 1 ? 200 : 20, [&] { be->matmul(in, *x.w, nullptr, out); });
        best = std::min(best, t);
        if (x.m == 1) std::printf(" | v%d %.1f us %.0f GB/s", v, t * 1e6, bytes / t / 1e9);
        else std::printf(" | %.1f us %.0f TFLOP/s", t * 1e6, flops / t / 1e12);
      }
      std::printf("\n");
      if (x.m == 1 && std::string(x.name) != "lm_head") {
        const int count = std::string(x.name) == "gate/up" ? 2 : std::string(x.name) == "down" ? 1 : std::string(x.name) == "o proj" ? 1 : std::string(x.name) == "q/o proj" ? 1 : 2;
        layer_best += count * best;
      }
    }
  }
  kernels::cuda_set_gemv_variant(*be, 1);
  double small = 0;
  auto x1 = act(1, h), r1 = act(1, h), y1 = act(1, h);
  double t = per_call(*be, 500, [&] { be->rms_norm(x1, norm, 1e-5f, y1); });
  std::printf("  rms_norm 1x%lld: %.1f us\n", (long long)h, t * 1e6);
  small += t;
  t = per_call(*be, 500, [&] { be->add_rms_norm(x1, r1, norm, 1e-5f, y1); });
  std::printf("  add_rms_norm 1x%lld: %.1f us\n", (long long)h, t * 1e6);
  small += t;
  auto gu1 = act(1, 2 * inter), a1 = act(1, inter);
  t = per_call(*be, 500, [&] { be->silu_and_mul(gu1, a1); });
  std::printf("  silu_and_mul 1x%lld: %.1f us\n", (long long)inter, t * 1e6);
  small += t;
  // RoPE + KV write and decode attention at a 256-token context.
  const int64_t blocks = 64, bs = 16, ctx = 256;
  auto kc = act(blocks * bs, kvo), vc = act(blocks * bs, kvo);
  kernels::tensor kc4 = kc, vc4 = vc;
  kc4.dims = {blocks, bs, c.num_key_value_heads, d};
  vc4.dims = kc4.dims;
  auto qkv1 = act(1, qo + 2 * kvo), q1 = act(1, qo), o1 = act(1, qo);
  qkv1.dims = {1, c.num_attention_heads + 2 * c.num_key_value_heads, d};
  q1.dims = {1, c.num_attention_heads, d};
  o1.dims = q1.dims;
  std::vector<float> freq(size_t(d / 2), 0.01f);
  auto f = be->upload_weight(kernels::dtype::f32, freq.data(), {d / 2});
  std::vector<int32_t> pos = {int32_t(ctx - 1)}, slot = {int32_t(ctx - 1)};
  auto pos_t = be->upload_indices(pos, {1});
  auto slot_t = be->upload_indices(slot, {1});
  t = per_call(*be, 500, [&] { be->rope_write_kv(qkv1, q1, pos_t, f, slot_t, kc4, vc4); });
  std::printf("  rope_write_kv 1 token: %.1f us\n", t * 1e6);
  small += t;
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  for (int i = 0; i < blocks; ++i) table[size_t(i)] = i;
  kernels::attention_batch batch;
  std::vector<int32_t> qsl = {0, 1}, lens = {int32_t(ctx)};
  batch.query_start_loc = be->upload_indices(qsl, {2});
  batch.seq_lens = be->upload_indices(lens, {1});
  batch.block_tables = be->upload_indices(table, {1, blocks});
  batch.max_query_len = 1;
  batch.max_seq_len = int32_t(ctx);
  batch.scale = 0.088f;
  t = per_call(*be, 500, [&] { be->paged_attention(q1, kc4, vc4, batch, o1); });
  std::printf("  paged_attention decode, context %lld: %.1f us\n", (long long)ctx, t * 1e6);
  small += t;
  std::vector<int32_t> one = {5};
  t = per_call(*be, 500, [&] { auto idx = be->upload_indices(one, {1}); });
  std::printf("  upload_indices of 1 id: %.1f us\n", t * 1e6);
  std::vector<float> host(size_t(c.vocab_size));
  auto logits = act(1, c.vocab_size);
  t = per_call(*be, 100, [&] { be->copy_to_host(logits, host); });
  std::printf("  copy_to_host of %lld logits: %.1f us\n", (long long)c.vocab_size, t * 1e6);
  std::printf("  a decode layer from these (best gemv per shape): %.1f us gemv + %.1f us other (x%lld layers = %.2f ms)\n",
              layer_best * 1e6, (small + t * 0) * 1e6, (long long)c.num_hidden_layers,
              (layer_best + small + per_call(*be, 500, [&] { be->add_rms_norm(x1, r1, norm, 1e-5f, y1); })) *
                  c.num_hidden_layers * 1e3);
  // Prefill attention at 2048 tokens.
  const int64_t T = 2048, pblocks = T / bs;
  auto kcp = act(pblocks * bs, kvo), vcp = act(pblocks * bs, kvo), qp = act(T, qo), op = act(T, qo);
  kcp.dims = {pblocks, bs, c.num_key_value_heads, d};
  vcp.dims = kcp.dims;
  qp.dims = {T, c.num_attention_heads, d};
  op.dims = qp.dims;
  std::vector<int32_t> ptable(static_cast<size_t>(pblocks));
  for (int i = 0; i < pblocks; ++i) ptable[size_t(i)] = i;
  std::vector<int32_t> pqsl = {0, int32_t(T)}, plens = {int32_t(T)};
  kernels::attention_batch pb;
  pb.query_start_loc = be->upload_indices(pqsl, {2});
  pb.seq_lens = be->upload_indices(plens, {1});
  pb.block_tables = be->upload_indices(ptable, {1, pblocks});
  pb.max_query_len = int32_t(T);
  pb.max_seq_len = int32_t(T);
  pb.scale = 0.088f;
  const double attn_flops = 2.0 * 2.0 * double(T) * double(T) / 2 * double(qo);
  t = per_call(*be, 10, [&] { be->paged_attention(qp, kcp, vcp, pb, op); });
  std::printf("  paged_attention prefill %lld tokens: %.1f us (%.0f TFLOP/s causal)\n", (long long)T, t * 1e6,
              attn_flops / t / 1e12);
  kernels::cuda_use_prefill_kernel(*be, false);
  t = per_call(*be, 3, [&] { be->paged_attention(qp, kcp, vcp, pb, op); });
  std::printf("  paged_attention prefill %lld tokens, per-row kernel: %.1f us\n", (long long)T, t * 1e6);
  const std::string err = kernels::cuda_backend_error(*be);
  if (!err.empty()) std::printf("  backend error: %s\n", err.c_str());
}

// Decode attention alone: paged_attention on batches of one new row per sequence, every sequence at
// the same context, pages scattered at random over the cache. Calls are recorded in a CUDA graph as
// the engine's decode steps are (scratch becomes an allocation node) and timed by replaying it; the
// cache holds enough copies of the batch's pages (each call reads the next copy) that successive
// calls do not find their K/V in L2.
void attention_bench(double copy_bw) {
  struct shape_case { const char* name; int64_t heads, kv_heads; };
  const shape_case shapes[] = {{"MHA 32/32", 32, 32}, {"GQA 32/8", 32, 8}};
  const int64_t dim = 128, bs = 16;
  auto be = kernels::make_cuda_backend(0, kernels::dtype::bf16);
  kernels::cuda_set_dummy_weights(*be, 5);
  std::printf("\ndecode attention (bf16, head_dim %lld, blocks of %lld, max_seq_len the next power of two):\n",
              (long long)dim, (long long)bs);
  std::printf("| heads | seqs | context | K/V MB | us per call | TB/s | of copy bw |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  for (const auto& sh : shapes) {
    for (int64_t seqs : {int64_t{1}, int64_t{64}, int64_t{256}}) {
      // Context 0: lengths spread over 64-1,280 (offline-256's decode batches), longest first.
      for (int64_t ctx : {int64_t{192}, int64_t{600}, int64_t{1000}, int64_t{0}}) {
        if (ctx == 0 && seqs == 1) continue;
        // ATTENTION_CASE=KIND:SEQS:CONTEXT (e.g. MHA:256:0, context 0 the spread one): that case alone.
        if (const char* only = std::getenv("ATTENTION_CASE"); only != nullptr && *only != '\0' &&
            std::string(only) != std::string(sh.name).substr(0, 3) + ":" + std::to_string(seqs) + ":" + std::to_string(ctx))
          continue;
        std::vector<int32_t> lens(static_cast<size_t>(seqs), static_cast<int32_t>(ctx));
        for (int64_t i = 0; ctx == 0 && i < seqs; ++i) lens[size_t(i)] = int32_t(1280 - (i * 1216) / seqs);
        const int64_t longest = *std::max_element(lens.begin(), lens.end());
        int64_t keys = 0;
        for (int32_t l : lens) keys += l;
        const int64_t pages = (longest + bs - 1) / bs, need = seqs * pages;
        const double bytes = 2.0 * 2.0 * double(keys * sh.kv_heads * dim);
        const double page_bytes = 2.0 * 2.0 * double(bs * sh.kv_heads * dim);
        const int copies = int(std::clamp(std::ceil(256e6 / (double(need) * page_bytes)), 1.0, 16.0));
        const int64_t pool = need * copies;
        const kernels::shape cache_dims{pool, bs, sh.kv_heads, dim};
        auto kc = be->upload_weight(kernels::dtype::bf16, nullptr, cache_dims);
        auto vc = be->upload_weight(kernels::dtype::bf16, nullptr, cache_dims);
        auto q = be->upload_weight(kernels::dtype::bf16, nullptr, {seqs, sh.heads, dim});
        auto out = be->alloc({seqs, sh.heads, dim});
        std::vector<int32_t> perm(static_cast<size_t>(pool));
        for (int64_t i = 0; i < pool; ++i) perm[size_t(i)] = int32_t(i);
        std::shuffle(perm.begin(), perm.end(), std::mt19937(uint32_t(seqs * 7 + ctx)));
        std::vector<int32_t> qsl(static_cast<size_t>(seqs + 1));
        for (int64_t i = 0; i <= seqs; ++i) qsl[size_t(i)] = int32_t(i);
        int32_t bound = 1;
        while (bound < longest) bound *= 2;
        std::vector<kernels::attention_batch> batches(static_cast<size_t>(copies));
        for (int c = 0; c < copies; ++c) {
          std::vector<int32_t> table(perm.begin() + c * need, perm.begin() + (c + 1) * need);
          auto& b = batches[size_t(c)];
          b.query_start_loc = be->upload_indices(qsl, {seqs + 1});
          b.seq_lens = be->upload_indices(lens, {seqs});
          b.block_tables = be->upload_indices(table, {seqs, pages});
          b.max_query_len = 1;
          b.max_seq_len = bound;
          b.scale = 1.0f / std::sqrt(float(dim));
        }
        const int calls = std::max(copies, 16);
        for (int c = 0; c < copies; ++c) be->paged_attention(q, kc, vc, batches[size_t(c)], out);  // warm-up
        be->synchronize();
        if (!be->begin_capture()) {
          std::fprintf(stderr, "cuda_bench: no graph capture\n");
          std::exit(1);
        }
        for (int c = 0; c < calls; ++c) be->paged_attention(q, kc, vc, batches[size_t(c % copies)], out);
        const int graph = be->end_capture();
        if (graph < 0) {
          std::fprintf(stderr, "cuda_bench: capture failed: %s\n", kernels::cuda_backend_error(*be).c_str());
          std::exit(1);
        }
        std::vector<double> times;
        for (int r = 0; r < 7; ++r) {
          be->synchronize();
          const auto start = std::chrono::steady_clock::now();
          be->replay(graph);
          be->synchronize();
          if (r > 1) times.push_back(seconds_since(start) / calls);
        }
        be->release_graph(graph);
        const double t = median(times);
        std::printf("| %s | %lld | %s | %.1f | %.1f | %.2f | %.0f%% |\n", sh.name, (long long)seqs,
                    ctx > 0 ? std::to_string(ctx).c_str() : "64-1280", bytes / 1e6, t * 1e6, bytes / t / 1e12,
                    100.0 * bytes / t / copy_bw);
        const std::string err = kernels::cuda_backend_error(*be);
        if (!err.empty()) {
          std::fprintf(stderr, "cuda_bench: backend error: %s\n", err.c_str());
          std::exit(1);
        }
      }
    }
  }
}

}  // namespace

// cuBLAS products at the decode and prefill shapes of a step (weights [n, k], m activation rows):
// cublasGemmEx's default algorithm, called as the backend called it before cuBLASLt, against the
// backend's cuBLASLt path (kernels/cuda/lt_matmul, tuned at each shape's first call, outside the
// timing), both timed alike: microseconds per call, 8 back to back, median of 20 samples.
void gemm_sweep() {
  auto be = kernels::make_cuda_backend(0, kernels::dtype::bf16);
  kernels::cuda_set_dummy_weights(*be, 98);
  cublasHandle_t h;
  cublasCreate(&h);
  std::string why;
  const auto* blas = kernels::cuda::load_cublas(&why);
  cublasHandle_t lt_blas = nullptr;
  void* workspace = nullptr;
  const size_t workspace_bytes = size_t{32} << 20;
  BENCH_CUDA(cudaMalloc(&workspace, workspace_bytes));
  if (blas == nullptr || blas->create(&lt_blas) != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "cuda_bench: no cuBLAS: %s\n", why.c_str());
    std::exit(1);
  }
  auto lt = kernels::cuda::lt_matmul::create(blas, lt_blas, workspace, workspace_bytes, &why);
  if (lt == nullptr) {
    std::fprintf(stderr, "cuda_bench: no cuBLASLt: %s\n", why.c_str());
    std::exit(1);
  }
  struct nk {
    const char* name;
    int n, k;
  };
  const nk shapes[] = {{"q or o", 4096, 4096},   {"k (GQA)", 1024, 4096}, {"qkv MHA", 12288, 4096},
                       {"qkv GQA", 6144, 4096},  {"gate", 11008, 4096},  {"gate+up", 22016, 4096},
                       {"down", 4096, 11008},    {"gate+up L3", 28672, 4096}, {"down L3", 4096, 14336}};
  std::printf("\nGEMM sweep (bf16, float32 accumulation): cublasGemmEx (CUBLAS_GEMM_DEFAULT) against cuBLASLt "
              "tuned per shape; us per call, median of 20 samples of 8 calls back to back:\n");
  std::printf("| product | n | k | m | GemmEx us | Lt us | GemmEx / Lt | Lt TFLOP/s |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- |\n");
  double sum_ex = 0, sum_lt = 0;
  for (const auto& s : shapes) {
    // 8 copies of the weight, so consecutive calls miss L2 as a step's different layers do.
    std::vector<kernels::tensor> ws;
    for (int c = 0; c < 8; ++c) ws.push_back(be->upload_weight(kernels::dtype::bf16, nullptr, {s.n, s.k}));
    for (int m : {64, 128, 192, 256, 384, 2048, 4096}) {
      auto x = be->upload_weight(kernels::dtype::bf16, nullptr, {m, s.k});
      auto out = be->alloc({m, s.n});
      be->synchronize();
      const double t_ex = median_call_seconds(
          20, 4, 8, [&](int i) { gemm_bf16(h, s.n, m, s.k, ws[size_t(i % 8)].data, x.data, out.data); });
      kernels::cuda::gemm_args g{CUDA_R_16BF, m, s.n, s.k, x.data, ws[0].data, out.data};
      if (lt->run(g, nullptr) != CUBLAS_STATUS_SUCCESS) {  // the first call tunes the shape
        std::fprintf(stderr, "cuda_bench: cuBLASLt failed at m %d n %d k %d\n", m, s.n, s.k);
        std::exit(1);
      }
      BENCH_CUDA(cudaDeviceSynchronize());
      const double t_lt = median_call_seconds(20, 4, 8, [&](int i) {
        g.w = ws[size_t(i % 8)].data;
        lt->run(g, nullptr);
      });
      sum_ex += t_ex;
      sum_lt += t_lt;
      std::printf("| %s | %d | %d | %d | %.1f | %.1f | %.3f | %.0f |\n", s.name, s.n, s.k, m, t_ex * 1e6, t_lt * 1e6,
                  t_ex / t_lt, 2.0 * m * double(s.n) * s.k / t_lt / 1e12);
    }
  }
  std::printf("all shapes and row counts: GemmEx %.1f us, Lt %.1f us in all (%.3f)\n", sum_ex * 1e6, sum_lt * 1e6,
              sum_ex / sum_lt);
  std::printf("\n%s", lt->report(true).c_str());
  BENCH_CUDA(cudaGetLastError());
  lt.reset();
  blas->destroy(lt_blas);
  cudaFree(workspace);
  cublasDestroy(h);
}

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
    else if (a == "--ops") opt.ops = true;
    else if (a == "--no-graphs") opt.graphs = false;
    else if (a == "--attention") opt.attention = true;
    else if (a == "--gemm-sweep") opt.gemm_sweep = true;
    else if (a == "--prefill-attention") opt.prefill_attention = true;
    else if (a == "--read-bandwidth") opt.read_bandwidth = true;
    else if (a == "--gemv-variant") opt.gemv_variant = std::atoi(next().c_str());
    else if (a == "--overlap")
      for (int& v : opt.overlap) v = std::atoi(next().c_str());
    else {
      std::fprintf(stderr, "usage: cuda_bench [--shape llama2-7b|llama3-8b] [--prompt N] [--decode N] [--prefill N] "
                           "[--cublas-gemv] [--gemv-variant N] [--no-graphs] [--ops] [--attention] [--gemm-sweep] "
                           "[--prefill-attention] [--read-bandwidth] [--overlap PROMPT_ROWS DECODE_ROWS CONTEXT]\n");
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
  if (opt.attention) {
    std::printf("card %s: copy bandwidth %.0f GB/s\n", prop.name, bw / 1e9);
    attention_bench(bw);
    return 0;
  }
  if (opt.read_bandwidth) {
    std::printf("card %s\n", prop.name);
    troupe::bench::read_bandwidth_bench();
    return 0;
  }
  if (opt.overlap[0] > 0) {
    std::printf("card %s\n", prop.name);
    be.reset();  // the benchmark makes two backends of its own
    troupe::bench::overlap_bench(shape_of(opt.shape), opt.shape, opt.overlap[0], opt.overlap[1], opt.overlap[2]);
    return 0;
  }
  if (opt.prefill_attention) {
    std::printf("card %s\n", prop.name);
    troupe::bench::prefill_attention_bench();
    return 0;
  }
  const double flops = gemm_rate();
  std::printf("card %s: copy bandwidth %.0f GB/s, bf16 GEMM %.0f TFLOP/s\n", prop.name, bw / 1e9, flops / 1e12);
  if (opt.gemm_sweep) {
    gemm_sweep();
    return 0;
  }
  if (opt.ops) {
    op_profile(shape_of(opt.shape), opt.shape);
    return 0;
  }

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
  const int64_t params = engine::parameter_count(cfg);
  const double weight_bytes = 2.0 * double(params);
  std::printf("model %s: %.2fB parameters (%.2f GB bf16), drawn on the GPU in %.1f s\n", opt.shape.c_str(),
              double(params) / 1e9, weight_bytes / 1e9, seconds_since(load_start));
  if (!kernels::cuda_set_gemv_variant(*be, opt.cublas_gemv ? 0 : opt.gemv_variant)) {
    std::fprintf(stderr, "cuda_bench: no gemv variant %d\n", opt.gemv_variant);
    return 2;
  }

  if (!opt.graphs) (*model)->set_graph_batch(0);
  // decode-1: warm-up, then the timed run. Each step ends with the greedy token on the host, picked
  // on the GPU.
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
  // Where the GPU time goes: each op timed with CUDA events (slower than the runs above).
  kernels::cuda_profile(*be, true);
  decode_run(**model, *cache, prompt, 32);
  const std::string decode_profile = kernels::cuda_profile_report(*be);
  {
    sequence_runner runner(**model, *cache);
    if (!runner.feed(long_prompt)) return 1;
  }
  const std::string prefill_profile = kernels::cuda_profile_report(*be);
  kernels::cuda_profile(*be, false);
  std::printf("\nGPU time per op, %d-token prompt then 32 decode steps:\n%s", opt.prompt, decode_profile.c_str());
  std::printf("GPU time per op, prefill of %d tokens:\n%s", opt.prefill, prefill_profile.c_str());
  const std::string matmul = std::getenv("TROUPE_MATMUL") != nullptr ? std::getenv("TROUPE_MATMUL") : "lt";
  const bool gemm_ex = matmul == "gemmex";
  std::printf("products of several rows: %s\n%s",
              gemm_ex ? "cublasGemmEx (TROUPE_MATMUL=gemmex)"
              : matmul == "lt-all" ? "cuBLASLt tuned per shape (TROUPE_MATMUL=lt-all)"
                                   : "cuBLASLt tuned per shape up to 512 rows, cublasGemmEx above",
              gemm_ex ? "" : kernels::cuda_matmul_report(*be).c_str());
  const double prefill_flops = 2.0 * double(params) * opt.prefill;
  const std::string err = kernels::cuda_backend_error(*be);
  if (!err.empty()) {
    std::fprintf(stderr, "cuda_bench: backend error: %s\n", err.c_str());
    return 1;
  }
  std::printf("\n| %s bf16 on %s | measured | ceiling | fraction |\n| --- | --- | --- | --- |\n", opt.shape.c_str(),
              prop.name);
  std::string gemv_name = opt.cublas_gemv ? "cuBLAS" : opt.gemv_variant == 1 ? "own" : "own v" + std::to_string(opt.gemv_variant);
  gemv_name += opt.graphs ? " gemv, CUDA graphs" : " gemv, no graphs";
  gemv_name += ", TROUPE_MATMUL=" + matmul;
  std::printf("| decode-1 (%d prompt, %d new, %s) | %.1f tok/s | %.1f tok/s (%.0f GB/s / %.2f GB per step) | %.1f%% |\n",
              opt.prompt, opt.decode, gemv_name.c_str(), tok_s, ceiling, bw / 1e9, step_bytes / 1e9,
              100.0 * tok_s / ceiling);
  // PERFORMANCE.md's (and issue 5's) batch-1 ceiling, BW / W with W = every parameter's bytes (the
  // embedding table counted whole, the KV cache not): the row above counts the bytes a step reads.
  std::printf("| decode-1 against BW / W (W = %.2f GB, PERFORMANCE.md) | %.1f tok/s | %.1f tok/s | %.1f%% |\n",
              weight_bytes / 1e9, tok_s, bw / weight_bytes, 100.0 * tok_s * weight_bytes / bw);
  std::printf("| prefill-%d (%s) | %.0f tok/s (%.1f ms, %.0f TFLOP/s at 2*P*T) | %.0f TFLOP/s GEMM | %.1f%% |\n",
              opt.prefill, matmul.c_str(), opt.prefill / t_prefill, t_prefill * 1e3,
              prefill_flops / t_prefill / 1e12, flops / 1e12, 100.0 * prefill_flops / t_prefill / flops);
  return 0;
}
