// The fused gate/up projection with SiLU (decode's MLP input) against the CPU's product with the
// stacked gate and up weights and silu_and_mul, and against the CUDA backend's own unfused ops.
#include <cmath>

#include "tests/kernels/test_cuda_util.hpp"

using namespace troupe::cuda_test;

TEST_CASE("cuda gated_matmul equals the stacked product and silu_and_mul", "[cuda]") {
  struct shape_case {
    int64_t k, n;
  };
  const shape_case cases[] = {{4096, 11008}, {4096, 14336}, {512, 1376}, {64, 13}, {8, 300}, {11008, 7}};
  for (dtype ct : {dtype::bf16, dtype::f16}) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    auto cpu = make_cpu_backend(2);
    std::mt19937 rng(9);
    for (const auto& c : cases) {
      INFO(to_string(ct) << " k " << c.k << " n " << c.n);
      auto x = rounded(*gpu, random_values(size_t(c.k), rng));
      auto gate = rounded(*gpu, random_values(size_t(c.n * c.k), rng, 2.0f / std::sqrt(float(c.k))));
      auto up = rounded(*gpu, random_values(size_t(c.n * c.k), rng, 1.0f / std::sqrt(float(c.k))));
      // As the model holds them: one weight of gate rows then up rows, gate and up its halves.
      auto stacked = [&](backend& be) {
        auto w = be.alloc_weight({2 * c.n, c.k});
        auto g = w.rows(0, c.n), u = w.rows(c.n, c.n);
        be.fill_weight(dtype::f32, gate.data(), g);
        be.fill_weight(dtype::f32, up.data(), u);
        return w;
      };
      auto gx = upload(*gpu, x, {1, c.k});
      auto gw = stacked(*gpu);
      auto fused = poisoned(*gpu, {1, c.n});
      REQUIRE(gpu->gated_matmul(gx, gw.rows(0, c.n), gw.rows(c.n, c.n), fused));
      auto gu1 = gpu->alloc({1, 2 * c.n}), unfused = poisoned(*gpu, {1, c.n});
      gpu->matmul(gx, gw, nullptr, gu1);
      gpu->silu_and_mul(gu1, unfused);

      auto cx = upload(*cpu, x, {1, c.k});
      auto cw = stacked(*cpu);
      auto out = cpu->alloc({1, c.n});
      CHECK_FALSE(cpu->gated_matmul(cx, cw.rows(0, c.n), cw.rows(c.n, c.n), out));  // no fused form
      auto cu1 = cpu->alloc({1, 2 * c.n});
      cpu->matmul(cx, cw, nullptr, cu1);
      cpu->silu_and_mul(cu1, out);

      const auto f = download(*gpu, fused), u = download(*gpu, unfused), want = download(*cpu, out);
      CHECK(max_rel_error(f, want) < tolerance(ct));
      CHECK(max_rel_error(f, u) < tolerance(ct));
    }
    // Batches of more than one row are not fused.
    auto x2 = gpu->alloc({2, 64});
    auto w = gpu->alloc({32, 64});
    auto o2 = gpu->alloc({2, 32});
    CHECK_FALSE(gpu->gated_matmul(x2, w, w, o2));
    CHECK(cuda_backend_error(*gpu).empty());
  }
}
