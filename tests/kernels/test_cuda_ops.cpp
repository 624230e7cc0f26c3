// Every op of the CUDA backend against the float32 CPU backend on random inputs of many shapes, in
// bf16 and f16. Inputs are rounded to the compute type first, so both backends see the same values;
// outputs start as NaN, so an unwritten element fails. Skips (with a warning) where there is no GPU.
#include <numeric>

#include "tests/kernels/test_cuda_util.hpp"

using namespace troupe::cuda_test;

namespace {

const dtype compute_types[] = {dtype::bf16, dtype::f16};

TEST_CASE("cuda embedding matches the CPU", "[cuda]") {
  for (dtype ct : compute_types) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    auto cpu = make_cpu_backend(2);
    std::mt19937 rng(1);
    for (int64_t hidden : {8, 100, 4096})
      for (int64_t tokens : {1, 7, 33}) {
        const int64_t vocab = 1000;
        auto table = rounded(*gpu, random_values(size_t(vocab * hidden), rng));
        std::vector<int32_t> ids(static_cast<size_t>(tokens));
        for (auto& id : ids) id = int32_t(rng() % vocab);
        auto gt = gpu->upload_weight(dtype::f32, table.data(), {vocab, hidden});
        auto ct_ = cpu->upload_weight(dtype::f32, table.data(), {vocab, hidden});
        auto go = poisoned(*gpu, {tokens, hidden});
        auto co = cpu->alloc({tokens, hidden});
        gpu->embedding(gt, gpu->upload_indices(ids, {tokens}), go);
        cpu->embedding(ct_, cpu->upload_indices(ids, {tokens}), co);
        INFO("hidden " << hidden << " tokens " << tokens);
        CHECK(max_rel_error(download(*gpu, go), download(*cpu, co)) == 0.0);
      }
    CHECK(cuda_backend_error(*gpu).empty());
  }
}

TEST_CASE("cuda rms_norm and add_rms_norm match the CPU", "[cuda]") {
  for (dtype ct : compute_types) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    auto cpu = make_cpu_backend(2);
    std::mt19937 rng(2);
    for (int64_t n : {8, 64, 100, 4096, 5120})
      for (int64_t rows : {1, 3, 17}) {
        INFO(to_string(ct) << " n " << n << " rows " << rows);
        auto x = rounded(*gpu, random_values(size_t(rows * n), rng));
        auto res = rounded(*gpu, random_values(size_t(rows * n), rng));
        auto w = random_values(size_t(n), rng, 0.2f);
        for (auto& v : w) v += 1.0f;
        w = rounded(*gpu, w);  // the Hugging Face weight is stored in the model's type
        auto gw = gpu->upload_weight(dtype::f32, w.data(), {n});
        auto cw = cpu->upload_weight(dtype::f32, w.data(), {n});
        auto gx = upload(*gpu, x, {rows, n});
        auto cx = upload(*cpu, x, {rows, n});
        auto go = poisoned(*gpu, {rows, n});
        auto co = cpu->alloc({rows, n});
        gpu->rms_norm(gx, gw, 1e-5f, go);
        cpu->rms_norm(cx, cw, 1e-5f, co);
        CHECK(max_rel_error(download(*gpu, go), download(*cpu, co)) < tolerance(ct));

        auto gr = upload(*gpu, res, {rows, n});
        auto cr = upload(*cpu, res, {rows, n});
        gpu->add_rms_norm(gx, gr, gw, 1e-6f, go);
        cpu->add_rms_norm(cx, cr, cw, 1e-6f, co);
        CHECK(max_rel_error(download(*gpu, gr), download(*cpu, cr)) < tolerance(ct));
        CHECK(max_rel_error(download(*gpu, go), download(*cpu, co)) < tolerance(ct));
      }
    CHECK(cuda_backend_error(*gpu).empty());
  }
}

struct mm_case {
  int64_t m, k, n;
};

TEST_CASE("cuda matmul (every gemv variant and cuBLAS, with and without bias) matches the CPU", "[cuda]") {
  const mm_case cases[] = {{1, 64, 64},   {1, 4096, 4096}, {1, 4096, 11008}, {1, 11008, 4096}, {1, 100, 37},
                           {1, 24, 1000}, {3, 128, 96},    {17, 512, 300},   {64, 1024, 1024}, {200, 64, 352}};
  for (dtype ct : compute_types) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    auto cpu = make_cpu_backend(2);
    std::mt19937 rng(3);
    for (const auto& c : cases)
      for (bool with_bias : {false, true})
        for (int variant = 0; variant <= 13; ++variant) {
          INFO(to_string(ct) << " m " << c.m << " k " << c.k << " n " << c.n << " bias " << with_bias
                             << " gemv variant " << variant);
          REQUIRE(cuda_set_gemv_variant(*gpu, variant));
          auto x = rounded(*gpu, random_values(size_t(c.m * c.k), rng));
          auto w = rounded(*gpu, random_values(size_t(c.n * c.k), rng, 1.0f / std::sqrt(float(c.k))));
          auto b = random_values(size_t(c.n), rng, 0.1f);
          auto gw = gpu->upload_weight(dtype::f32, w.data(), {c.n, c.k});
          auto cw = cpu->upload_weight(dtype::f32, w.data(), {c.n, c.k});
          auto gb = gpu->upload_weight(dtype::f32, b.data(), {c.n});
          auto cb = cpu->upload_weight(dtype::f32, b.data(), {c.n});
          auto go = poisoned(*gpu, {c.m, c.n});
          auto co = cpu->alloc({c.m, c.n});
          gpu->matmul(upload(*gpu, x, {c.m, c.k}), gw, with_bias ? &gb : nullptr, go);
          cpu->matmul(upload(*cpu, x, {c.m, c.k}), cw, with_bias ? &cb : nullptr, co);
          CHECK(max_rel_error(download(*gpu, go), download(*cpu, co)) < tolerance(ct));
        }
    CHECK(cuda_backend_error(*gpu).empty());
  }
}

// Shapes tuned so far, from the summary line of cuda_matmul_report ("...: N shapes tuned ...").
int shapes_tuned(backend& gpu) {
  const std::string r = cuda_matmul_report(gpu);
  const size_t at = r.find(": ");
  return at == std::string::npos ? -1 : std::stoi(r.substr(at + 2));
}

TEST_CASE("cuda matmul of several rows, cuBLASLt tuned per shape and GemmEx, matches the CPU", "[cuda]") {
  // Odd sizes, one row (cuBLAS rather than the gemv kernel here), row counts that share a tuning bucket
  // (129 and 130; 300 and 310), sizes from decode batches to prefill chunks, and inputs whose rows
  // start unaligned (a view from row 1).
  const mm_case cases[] = {{1, 4096, 1000},  {1, 37, 29},     {2, 64, 64},      {3, 37, 29},      {5, 100, 1000},
                           {8, 4096, 4096},  {17, 513, 301},  {64, 1024, 1024}, {77, 333, 555},   {129, 256, 4097},
                           {130, 256, 4097}, {200, 64, 352},  {256, 4096, 1024}, {300, 96, 130},  {310, 96, 130},
                           {1000, 128, 192}, {2047, 256, 256}};
  for (dtype ct : compute_types) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    auto cpu = make_cpu_backend(2);
    std::mt19937 rng(31);
    REQUIRE(cuda_set_gemv_variant(*gpu, 0));
    for (bool lt : {true, false}) {
      REQUIRE(cuda_use_lt_matmul(*gpu, lt, 1 << 30));  // cuBLASLt at every size; it must load where a GPU is
      for (const auto& c : cases)
        for (int variant = 0; variant < 3; ++variant) {  // no bias, bias, bias with x's rows unaligned
          const bool with_bias = variant > 0, offset = variant == 2;
          INFO(to_string(ct) << (lt ? " cuBLASLt" : " GemmEx") << " m " << c.m << " k " << c.k << " n " << c.n
                             << " bias " << with_bias << " x from row 1 " << offset);
          auto x = rounded(*gpu, random_values(size_t((c.m + 1) * c.k), rng));
          auto w = rounded(*gpu, random_values(size_t(c.n * c.k), rng, 1.0f / std::sqrt(float(c.k))));
          auto b = random_values(size_t(c.n), rng, 0.1f);
          auto gw = gpu->upload_weight(dtype::f32, w.data(), {c.n, c.k});
          auto cw = cpu->upload_weight(dtype::f32, w.data(), {c.n, c.k});
          auto gb = gpu->upload_weight(dtype::f32, b.data(), {c.n});
          auto cb = cpu->upload_weight(dtype::f32, b.data(), {c.n});
          auto gx = upload(*gpu, x, {c.m + 1, c.k}).rows(offset ? 1 : 0, c.m);
          auto cx = upload(*cpu, x, {c.m + 1, c.k}).rows(offset ? 1 : 0, c.m);
          auto go = poisoned(*gpu, {c.m, c.n});
          auto co = cpu->alloc({c.m, c.n});
          gpu->matmul(gx, gw, with_bias ? &gb : nullptr, go);
          cpu->matmul(cx, cw, with_bias ? &cb : nullptr, co);
          CHECK(max_rel_error(download(*gpu, go), download(*cpu, co)) < tolerance(ct));
        }
    }
    CHECK(shapes_tuned(*gpu) >= 12);
    INFO(cuda_matmul_report(*gpu, true));
    CHECK(cuda_backend_error(*gpu).empty());
  }
}

TEST_CASE("cuda matmul first met inside a graph capture is right, and is tuned at its next call outside", "[cuda]") {
  for (dtype ct : compute_types) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    auto cpu = make_cpu_backend(2);
    REQUIRE(cuda_use_lt_matmul(*gpu, true));
    std::mt19937 rng(32);
    const int64_t m = 24, k = 320, n = 200;
    auto x = rounded(*gpu, random_values(size_t(m * k), rng));
    auto w = rounded(*gpu, random_values(size_t(n * k), rng, 1.0f / std::sqrt(float(k))));
    auto gx = upload(*gpu, x, {m, k});
    auto gw = gpu->upload_weight(dtype::f32, w.data(), {n, k});
    auto co = cpu->alloc({m, n});
    cpu->matmul(upload(*cpu, x, {m, k}), cpu->upload_weight(dtype::f32, w.data(), {n, k}), nullptr, co);
    const auto want = download(*cpu, co);
    auto go = poisoned(*gpu, {m, n});
    gpu->synchronize();
    const int before = shapes_tuned(*gpu);
    REQUIRE(gpu->begin_capture());
    gpu->matmul(gx, gw, nullptr, go);
    const int graph = gpu->end_capture();
    REQUIRE(graph >= 0);
    CHECK(shapes_tuned(*gpu) == before);  // nothing timed inside the capture
    gpu->replay(graph);
    CHECK(max_rel_error(download(*gpu, go), want) < tolerance(ct));
    auto eager = poisoned(*gpu, {m, n});
    gpu->matmul(gx, gw, nullptr, eager);
    CHECK(shapes_tuned(*gpu) == before + 1);
    CHECK(max_rel_error(download(*gpu, eager), want) < tolerance(ct));
    gpu->release_graph(graph);
    CHECK(cuda_backend_error(*gpu).empty());
  }
}

TEST_CASE("cuda weights upload from F16 and BF16 host data", "[cuda]") {
  auto gpu = gpu_or_skip(dtype::bf16);
  if (!gpu) return;
  std::mt19937 rng(4);
  auto values = random_values(4096, rng);
  std::vector<uint16_t> as_bf16(values.size());
  for (size_t i = 0; i < values.size(); ++i) as_bf16[i] = float_to_bf16(values[i]);
  std::vector<float> want(values.size());
  to_float(dtype::bf16, as_bf16.data(), want.data(), want.size());
  auto t = gpu->upload_weight(dtype::bf16, as_bf16.data(), {64, 64});
  CHECK(max_rel_error(download(*gpu, t), want) == 0.0);
  // F16 host data (exactly representable values) converted to bf16 on the GPU.
  std::vector<uint16_t> as_f16 = {0x3c00, 0xc000, 0x3800, 0x0000, 0x4400, 0xbc00, 0x3400, 0x4900};
  std::vector<float> f16_want(as_f16.size());
  to_float(dtype::f16, as_f16.data(), f16_want.data(), f16_want.size());
  auto h = gpu->upload_weight(dtype::f16, as_f16.data(), {2, 4});
  CHECK(max_rel_error(download(*gpu, h), f16_want) == 0.0);
  CHECK(cuda_backend_error(*gpu).empty());
}

TEST_CASE("cuda elementwise ops and gather_rows match the CPU", "[cuda]") {
  for (dtype ct : compute_types) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    auto cpu = make_cpu_backend(2);
    std::mt19937 rng(5);
    for (int64_t n : {1, 7, 4099, 11008 * 3}) {
      INFO(to_string(ct) << " n " << n);
      auto a = rounded(*gpu, random_values(size_t(n), rng, 3.0f));
      auto b = rounded(*gpu, random_values(size_t(n), rng));
      auto ga = upload(*gpu, a, {n}), gb = upload(*gpu, b, {n});
      auto ca = upload(*cpu, a, {n}), cb = upload(*cpu, b, {n});
      // silu_and_mul over 3 rows of [gate | up] of 2n each
      auto gate_up = rounded(*gpu, random_values(size_t(6 * n), rng, 3.0f));
      auto go = poisoned(*gpu, {3, n});
      auto co = cpu->alloc({3, n});
      gpu->silu_and_mul(upload(*gpu, gate_up, {3, 2 * n}), go);
      cpu->silu_and_mul(upload(*cpu, gate_up, {3, 2 * n}), co);
      CHECK(max_rel_error(download(*gpu, go), download(*cpu, co)) < tolerance(ct));
      gpu->add(ga, gb, ga);  // in place, as the interface allows
      cpu->add(ca, cb, ca);
      CHECK(max_rel_error(download(*gpu, ga), download(*cpu, ca)) < tolerance(ct));
    }
    for (int64_t cols : {8, 100, 4096}) {
      const int64_t rows = 37;
      auto x = rounded(*gpu, random_values(size_t(rows * cols), rng));
      std::vector<int32_t> pick = {36, 0, 5, 5, 17};
      auto go = poisoned(*gpu, {5, cols});
      auto co = cpu->alloc({5, cols});
      gpu->gather_rows(upload(*gpu, x, {rows, cols}), gpu->upload_indices(pick, {5}), go);
      cpu->gather_rows(upload(*cpu, x, {rows, cols}), cpu->upload_indices(pick, {5}), co);
      CHECK(max_rel_error(download(*gpu, go), download(*cpu, co)) == 0.0);
    }
    CHECK(cuda_backend_error(*gpu).empty());
  }
}

struct rope_case {
  int64_t tokens, heads, kv_heads, dim;
};

TEST_CASE("cuda rope_write_kv matches the CPU, cache writes included", "[cuda]") {
  const rope_case cases[] = {{1, 4, 4, 8},     {5, 8, 2, 16},   {40, 32, 8, 128}, {3, 32, 32, 128},
                             {17, 16, 4, 64},  {300, 32, 32, 128}, {2, 6, 2, 10}};  // 10: pairs one at a time
  for (dtype ct : compute_types) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    auto cpu = make_cpu_backend(2);
    std::mt19937 rng(6);
    for (const auto& c : cases) {
      INFO(to_string(ct) << " tokens " << c.tokens << " heads " << c.heads << "/" << c.kv_heads << " dim " << c.dim);
      const int64_t block_size = 16, blocks = std::max<int64_t>(8, c.tokens / block_size + 2);
      const int64_t slots = blocks * block_size;  // more slots than tokens: each token its own
      std::vector<float> freq(size_t(c.dim / 2));
      for (size_t i = 0; i < freq.size(); ++i) freq[i] = std::pow(10000.0f, -2.0f * float(i) / float(c.dim));
      std::vector<int32_t> positions(size_t(c.tokens)), slot(size_t(c.tokens));
      std::vector<int32_t> all(static_cast<size_t>(slots));
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      for (int64_t t = 0; t < c.tokens; ++t) {
        positions[size_t(t)] = int32_t(rng() % 8000);
        slot[size_t(t)] = t % 4 == 3 ? -1 : all[size_t(t)];  // some rows skip the write
      }
      const int64_t width = c.heads + 2 * c.kv_heads;  // q heads, k heads, v heads per token
      auto qkv = rounded(*gpu, random_values(size_t(c.tokens * width * c.dim), rng));
      auto cache0 = rounded(*gpu, random_values(size_t(slots * c.kv_heads * c.dim), rng));
      const shape cache_dims{blocks, block_size, c.kv_heads, c.dim};
      auto run = [&](backend& be) {
        auto tqkv = upload(be, qkv, {c.tokens, width, c.dim});
        auto tq = poisoned(be, {c.tokens, c.heads, c.dim});
        auto kc = upload(be, cache0, cache_dims), vc = upload(be, cache0, cache_dims);
        auto f = be.upload_weight(dtype::f32, freq.data(), {int64_t(freq.size())});
        be.rope_write_kv(tqkv, tq, be.upload_indices(positions, {c.tokens}), f, be.upload_indices(slot, {c.tokens}),
                         kc, vc);
        return std::vector<std::vector<float>>{download(be, tq), download(be, kc), download(be, vc), download(be, tqkv)};
      };
      auto g = run(*gpu), r = run(*cpu);
      CHECK(max_rel_error(g[0], r[0]) < tolerance(ct));
      CHECK(max_rel_error(g[1], r[1]) < tolerance(ct));
      CHECK(max_rel_error(g[2], r[2]) == 0.0);
      CHECK(max_rel_error(g[3], qkv) == 0.0);  // the input is left as it was
    }
    CHECK(cuda_backend_error(*gpu).empty());
  }
}

TEST_CASE("cuda backend errors become a visible state, not an abort", "[cuda]") {
  auto gpu = gpu_or_skip(dtype::bf16);
  if (!gpu) return;
  CHECK(cuda_backend_error(*gpu).empty());
  auto huge = gpu->alloc({int64_t{1} << 30, int64_t{1} << 20});  // 2 PiB
  CHECK(huge.data == nullptr);
  CHECK_FALSE(cuda_backend_error(*gpu).empty());
  auto t = gpu->alloc({4});
  std::vector<float> host(4, 1.0f);
  gpu->copy_to_host(t, host);
  CHECK(std::isnan(host[0]));
  // Another backend on the same device is unaffected.
  auto fresh = gpu_or_skip(dtype::bf16);
  REQUIRE(fresh);
  CHECK(cuda_backend_error(*fresh).empty());
}

TEST_CASE("the CPU backend reports no CUDA error and refuses dummy weights", "[cuda]") {
  auto cpu = make_cpu_backend(1);
  CHECK(cuda_backend_error(*cpu).empty());
  CHECK_FALSE(cuda_set_dummy_weights(*cpu, 1));
}

}  // namespace
