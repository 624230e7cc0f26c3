// The fused gate/up projection with SiLU (decode's MLP input) against the CPU's matmul, matmul,
// silu_and_mul, and against the CUDA backend's own unfused ops.
#include <cmath>

#include "tests/kernels/test_cuda_util.hpp"

using namespace troupe::cuda_test;

TEST_CASE("cuda gated_matmul equals matmul, matmul and silu_and_mul", "[cuda]") {
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
      auto gx = upload(*gpu, x, {1, c.k});
      auto gg = gpu->upload_weight(dtype::f32, gate.data(), {c.n, c.k});
      auto gu = gpu->upload_weight(dtype::f32, up.data(), {c.n, c.k});
      auto fused = poisoned(*gpu, {1, c.n});
      REQUIRE(gpu->gated_matmul(gx, gg, gu, fused));
      auto g1 = gpu->alloc({1, c.n}), u1 = gpu->alloc({1, c.n}), unfused = poisoned(*gpu, {1, c.n});
      gpu->matmul(gx, gg, nullptr, g1);
      gpu->matmul(gx, gu, nullptr, u1);
      gpu->silu_and_mul(g1, u1, unfused);

      auto cx = upload(*cpu, x, {1, c.k});
      auto cg = cpu->upload_weight(dtype::f32, gate.data(), {c.n, c.k});
      auto cu = cpu->upload_weight(dtype::f32, up.data(), {c.n, c.k});
      auto out = cpu->alloc({1, c.n});
      CHECK_FALSE(cpu->gated_matmul(cx, cg, cu, out));  // no fused form: the caller runs the three ops
      auto c1 = cpu->alloc({1, c.n}), c2 = cpu->alloc({1, c.n});
      cpu->matmul(cx, cg, nullptr, c1);
      cpu->matmul(cx, cu, nullptr, c2);
      cpu->silu_and_mul(c1, c2, out);

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
