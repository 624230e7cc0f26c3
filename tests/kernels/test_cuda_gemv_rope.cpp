// A one-token q/k/v product followed by rope_write_kv: on the CUDA backend the rotation and the KV
// write run in the gemv's epilogue (one kernel); checked against the unfused CUDA ops and the CPU.
#include <string>

#include "tests/kernels/test_cuda_util.hpp"

using namespace troupe::cuda_test;

namespace {

struct qkv_case {
  int64_t hidden, heads, kv_heads, dim;
  bool bias;
  int32_t position, slot;  // slot -1: no cache write
};

struct outputs {
  std::vector<float> q, k_cache, v_cache;
  std::string profile;
};

outputs run(backend& be, const qkv_case& c, const std::vector<float>& x, const std::vector<float>& w,
            const std::vector<float>& bias, const std::vector<float>& cache0, const std::vector<float>& freq) {
  const int64_t width = c.heads + 2 * c.kv_heads, blocks = 4, block_size = 16;
  const shape cache_dims{blocks, block_size, c.kv_heads, c.dim};
  auto tx = upload(be, x, {1, c.hidden});
  auto tw = be.upload_weight(dtype::f32, w.data(), {width * c.dim, c.hidden});
  tensor tb;
  if (c.bias) tb = be.upload_weight(dtype::f32, bias.data(), {width * c.dim});
  auto qkv = be.alloc({1, width, c.dim});
  auto q = poisoned(be, {1, c.heads, c.dim});
  auto kc = upload(be, cache0, cache_dims), vc = upload(be, cache0, cache_dims);
  auto f = be.upload_weight(dtype::f32, freq.data(), {int64_t(freq.size())});
  const std::vector<int32_t> pos = {c.position}, slot = {c.slot};
  cuda_profile(be, true);
  be.matmul(tx, tw, c.bias ? &tb : nullptr, qkv);
  be.rope_write_kv(qkv, q, be.upload_indices(pos, {1}), f, be.upload_indices(slot, {1}), kc, vc);
  outputs o{download(be, q), download(be, kc), download(be, vc), ""};
  cuda_profile(be, false);
  o.profile = cuda_profile_report(be);
  return o;
}

}  // namespace

TEST_CASE("cuda q/k/v gemv with RoPE and the KV write in its epilogue equals the separate ops", "[cuda]") {
  const qkv_case cases[] = {
      {4096, 32, 32, 128, false, 300, 17},  // Llama-2-7B
      {4096, 32, 8, 128, false, 4095, 63},  // Llama-3-8B (GQA 4)
      {1024, 16, 4, 64, true, 7, 0},        // biases (Qwen2), head_dim 64
      {512, 8, 1, 64, true, 1, -1},         // no cache write; GQA 8
      {64, 4, 2, 16, false, 0, 5},          // position 0, head_dim 16
  };
  for (dtype ct : {dtype::bf16, dtype::f16}) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    auto cpu = make_cpu_backend(2);
    std::mt19937 rng(21);
    for (const auto& c : cases) {
      INFO(to_string(ct) << " hidden " << c.hidden << " heads " << c.heads << "/" << c.kv_heads << " dim " << c.dim
                         << " bias " << c.bias << " slot " << c.slot);
      const int64_t rows = (c.heads + 2 * c.kv_heads) * c.dim;
      auto x = rounded(*gpu, random_values(size_t(c.hidden), rng));
      auto w = rounded(*gpu, random_values(size_t(rows * c.hidden), rng, 1.0f / std::sqrt(float(c.hidden))));
      auto bias = random_values(size_t(rows), rng, 0.5f);
      auto cache0 = rounded(*gpu, random_values(size_t(4 * 16 * c.kv_heads * c.dim), rng));
      std::vector<float> freq(size_t(c.dim / 2));
      for (size_t i = 0; i < freq.size(); ++i) freq[i] = std::pow(10000.0f, -2.0f * float(i) / float(c.dim));

      REQUIRE(cuda_use_fused_rope(*gpu, true));
      const outputs fused = run(*gpu, c, x, w, bias, cache0, freq);
      CHECK(fused.profile.find("q/k/v gemv + RoPE") != std::string::npos);  // it did run fused
      CHECK(fused.profile.find("rope_write_kv") == std::string::npos);
      cuda_use_fused_rope(*gpu, false);
      const outputs apart = run(*gpu, c, x, w, bias, cache0, freq);
      CHECK(apart.profile.find("rope_write_kv") != std::string::npos);
      cuda_use_fused_rope(*gpu, true);
      const outputs want = run(*cpu, c, x, w, bias, cache0, freq);

      CHECK(max_rel_error(fused.q, apart.q) < tolerance(ct) / 4);
      CHECK(max_rel_error(fused.k_cache, apart.k_cache) < tolerance(ct) / 4);
      CHECK(max_rel_error(fused.v_cache, apart.v_cache) < tolerance(ct) / 4);
      CHECK(max_rel_error(fused.q, want.q) < tolerance(ct));
      CHECK(max_rel_error(fused.k_cache, want.k_cache) < tolerance(ct));
      CHECK(max_rel_error(fused.v_cache, want.v_cache) < tolerance(ct));
      if (c.slot < 0) {
        CHECK(max_rel_error(fused.k_cache, cache0) == 0.0);  // nothing written
        CHECK(max_rel_error(fused.v_cache, cache0) == 0.0);
      }
    }
    CHECK(cuda_backend_error(*gpu).empty());
  }
}
