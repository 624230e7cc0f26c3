// The CUDA backend's sample op against the CPU reference (kernels/cpu/sampling_reference) on the same
// rounded logits: random rows of many shapes in bf16 and f16, with exact ties, every parameter,
// adjustments, prompt-logprob rows and top logprobs. Greedy must be equal exactly; a sampled token
// may differ only where the two cumulative sums round differently at the draw's boundary (counted,
// bounded, and each must be the neighbour of the reference's token). Also prints timings.
#include <chrono>
#include <cstdio>
#include <numeric>

#include "kernels/cpu/sampling_reference.hpp"
#include "tests/kernels/test_cuda_util.hpp"

using namespace troupe::cuda_test;

namespace {

const dtype compute_types[] = {dtype::bf16, dtype::f16};

/// Random logits; in some rows values come from a few levels, so that exact ties are common.
std::vector<float> random_logits(int64_t rows, int64_t vocab, std::mt19937& rng) {
  std::vector<float> v(size_t(rows * vocab));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const int style = int(rng() % 5);  // 4: logits as wide as a sharp model's, where pruning drops most
    const float scale = style == 0 ? 0.3f : style == 1 ? 2.0f : style == 4 ? 40.0f : 4.0f;
    for (int64_t j = 0; j < vocab; ++j) {
      float x = normal(rng) * scale;
      if (style == 3) x = std::round(x);  // few levels: ties
      v[size_t(r * vocab + j)] = x;
    }
  }
  return v;
}

/// A random recipe per row (every parameter mixed), adjustments included.
sampling_batch random_batch(int64_t rows, int64_t vocab, std::mt19937& rng, bool only_greedy = false) {
  sampling_batch b;
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  const float temps[] = {0.0f, 0.0f, 0.5f, 1.0f, 1.5f};
  const int32_t top_ks[] = {0, 0, 1, 5, 50};
  const float top_ps[] = {1.0f, 1.0f, 0.9f, 0.5f};
  const float min_ps[] = {0.0f, 0.0f, 0.05f, 0.3f};
  const int32_t lps[] = {-1, -1, -1, 0, 5, 20};
  for (int64_t r = 0; r < rows; ++r) {
    row_recipe rc;
    rc.temperature = only_greedy ? 0.0f : temps[rng() % 5];
    rc.top_k = top_ks[rng() % 5];
    rc.top_p = top_ps[rng() % 4];
    rc.min_p = min_ps[rng() % 4];
    rc.uniform = uni(rng);
    if (!only_greedy) {
      rc.logprobs = lps[rng() % 6];
      if (rng() % 8 == 0) {
        rc.score_token = int32_t(rng() % uint32_t(vocab));
        rc.logprobs = lps[3 + rng() % 3];
      }
      rc.first_adjustment = uint32_t(b.adjustments.size());
      if (rng() % 3 == 0) {
        const int n = int(rng() % 40);
        for (int a = 0; a < n; ++a) {
          const int32_t tok = int32_t(rng() % uint32_t(vocab));
          switch (rng() % 3) {
            case 0: b.adjustments.push_back({tok, logit_adjustment::kind::add, float(int(rng() % 21) - 10) * 0.5f}); break;
            case 1: b.adjustments.push_back({tok, logit_adjustment::kind::penalise, 1.3f}); break;
            default: b.adjustments.push_back({tok, logit_adjustment::kind::subtract, 0.75f}); break;
          }
        }
        b.adjustments.push_back({int32_t(vocab) + 3, logit_adjustment::kind::add, 5.0f});  // outside: ignored
      }
      rc.num_adjustments = uint32_t(b.adjustments.size() - rc.first_adjustment);
    }
    b.rows.push_back(rc);
  }
  return b;
}

/// The reference's candidates of a row in draw order (to tell a boundary case from a wrong token).
std::vector<int32_t> candidate_order(std::span<const float> logits, std::span<const logit_adjustment> adj) {
  std::vector<float> row(logits.begin(), logits.end());
  troupe::kernels::cpu::apply_adjustments(row, adj);
  std::vector<int32_t> order(row.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[size_t(a)] > row[size_t(b)]; });
  return order;
}

struct comparison {
  int64_t rows = 0, sampled = 0, boundary = 0;
};

void compare(backend& gpu, int64_t rows, int64_t vocab, std::mt19937& rng, comparison& c) {
  INFO(to_string(gpu.compute_type()) << " rows " << rows << " vocab " << vocab);
  auto values = random_logits(rows, vocab, rng);
  tensor t = upload(gpu, values, {rows, vocab});
  const auto host = download(gpu, t);  // the values the GPU holds, exactly
  const sampling_batch b = random_batch(rows, vocab, rng);
  sample_result want, got;
  troupe::kernels::cpu::sample_rows(host.data(), vocab, b, want, 8);
  gpu.sample(t, b, got);
  REQUIRE(cuda_backend_error(gpu).empty());
  REQUIRE(got.tokens.size() == size_t(rows));
  REQUIRE(got.logprobs.size() == size_t(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const row_recipe& rc = b.rows[size_t(r)];
    INFO("row " << r << " temperature " << rc.temperature << " top_k " << rc.top_k << " top_p " << rc.top_p
                << " min_p " << rc.min_p << " adjustments " << rc.num_adjustments << " score " << rc.score_token);
    const int32_t g = got.tokens[size_t(r)], w = want.tokens[size_t(r)];
    ++c.rows;
    if (rc.score_token >= 0 || rc.temperature == 0.0f) {
      CHECK(g == w);
    } else {
      ++c.sampled;
      if (g != w) {  // only a neighbour in the draw order, where the sums round differently
        ++c.boundary;
        const std::span<const float> row(host.data() + r * vocab, size_t(vocab));
        const auto order = candidate_order(row, {b.adjustments.data() + rc.first_adjustment, rc.num_adjustments});
        const auto pg = std::find(order.begin(), order.end(), g) - order.begin();
        const auto pw = std::find(order.begin(), order.end(), w) - order.begin();
        CHECK(std::abs(pg - pw) == 1);
      }
    }
    if (rc.logprobs < 0 || g != w) continue;
    const logprobs_entry& lg = got.logprobs[size_t(r)];
    const logprobs_entry& lw = want.logprobs[size_t(r)];
    CHECK(lg.chosen.token == lw.chosen.token);
    CHECK(lg.chosen.logprob == Approx(lw.chosen.logprob).margin(1e-5));
    CHECK(lg.rank == lw.rank);
    REQUIRE(lg.top.size() == lw.top.size());
    for (size_t k = 0; k < lg.top.size(); ++k) {
      CHECK(lg.top[k].token == lw.top[k].token);
      CHECK(lg.top[k].logprob == Approx(lw.top[k].logprob).margin(1e-5));
    }
  }
}

}  // namespace

TEST_CASE("cuda sample matches the CPU reference", "[cuda]") {
  for (dtype ct : compute_types) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    std::mt19937 rng(11);
    comparison c;
    for (int64_t vocab : {1, 2, 7, 100, 1000, 4099, 32000, 128256})
      for (int64_t rows : {1, 3, 64, 256}) {
        if (vocab >= 32000 && rows == 64) continue;  // time
        compare(*gpu, rows, vocab, rng, c);
      }
    std::printf("sample %s: %lld rows, %lld sampled, %lld differ at a draw boundary\n",
                std::string(to_string(ct)).c_str(), (long long)c.rows, (long long)c.sampled, (long long)c.boundary);
    CHECK(c.boundary <= 2 + c.sampled / 500);  // rounding at the boundary is rare
  }
}

TEST_CASE("cuda greedy sample equals the argmax exactly, ties to the lower id", "[cuda]") {
  for (dtype ct : compute_types) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    std::mt19937 rng(12);
    for (int64_t vocab : {1, 5, 8, 33, 32000, 32001, 128256})
      for (int64_t rows : {1, 17, 256}) {
        INFO(to_string(ct) << " rows " << rows << " vocab " << vocab);
        auto values = random_logits(rows, vocab, rng);
        for (int64_t r = 0; r < rows; r += 5)  // the maximum twice, far apart
          if (vocab > 2) values[size_t(r * vocab + vocab - 1)] = values[size_t(r * vocab + 1)] = 100.0f;
        tensor t = upload(*gpu, values, {rows, vocab});
        const auto host = download(*gpu, t);
        const sampling_batch b = random_batch(rows, vocab, rng, true);
        sample_result got;
        gpu->sample(t, b, got);
        REQUIRE(cuda_backend_error(*gpu).empty());
        for (int64_t r = 0; r < rows; ++r)
          CHECK(got.tokens[size_t(r)] ==
                troupe::kernels::cpu::argmax(std::span<const float>(host.data() + r * vocab, size_t(vocab))));
      }
  }
}

TEST_CASE("cuda sampling in two halves: two tickets open, tokens fed to ids on the device", "[cuda]") {
  for (dtype ct : compute_types) {
    auto gpu = gpu_or_skip(ct);
    if (!gpu) return;
    std::mt19937 rng(13);
    const int64_t vocab = 32000;
    for (int64_t rows : {1, 7, 300}) {  // 300: the feed takes two launches of 256 pairs
      INFO(to_string(ct) << " rows " << rows);
      tensor a = upload(*gpu, random_logits(rows, vocab, rng), {rows, vocab});
      tensor b = upload(*gpu, random_logits(rows, vocab, rng), {rows, vocab});
      const sampling_batch ba = random_batch(rows, vocab, rng), bb = random_batch(rows, vocab, rng, true);
      sample_result want_a, want_b;
      gpu->sample(a, ba, want_a);
      gpu->sample(b, bb, want_b);
      // b begins while a is open; a's tokens go, reversed, into every other slot of an id buffer.
      const int ta = gpu->sample_begin(a, ba);
      const int tb = gpu->sample_begin(b, bb);
      REQUIRE(ta != tb);
      std::vector<int32_t> fed_rows, at;
      for (int64_t r = 0; r < rows; ++r) {
        fed_rows.push_back(int32_t(rows - 1 - r));
        at.push_back(int32_t(2 * r));
      }
      const int32_t untouched = int32_t(vocab - 1);
      index_tensor ids = gpu->upload_indices(std::vector<int32_t>(size_t(2 * rows), untouched), {2 * rows});
      gpu->feed_sampled(ta, fed_rows, ids, at);
      sample_result got_a, got_b;
      gpu->sample_end(ta, got_a);
      gpu->sample_end(tb, got_b);
      REQUIRE(cuda_backend_error(*gpu).empty());
      CHECK(got_b.tokens == want_b.tokens);  // greedy: exactly
      // The sampled rows draw from the request's uniform, so a's tokens equal sample()'s too.
      CHECK(got_a.tokens == want_a.tokens);
      // Read the ids back through an embedding whose row i holds i / 256 and i % 256 (exact in bf16).
      std::vector<float> table(size_t(vocab * 8), 0.0f);
      for (int64_t i = 0; i < vocab; ++i) {
        table[size_t(i * 8)] = float(i / 256);
        table[size_t(i * 8 + 1)] = float(i % 256);
      }
      tensor t = gpu->upload_weight(dtype::f32, table.data(), {vocab, 8});
      tensor looked = gpu->alloc({2 * rows, 8});
      gpu->embedding(t, ids, looked);
      const auto back = download(*gpu, looked);
      const auto id_at = [&](int64_t j) { return int32_t(back[size_t(j * 8)]) * 256 + int32_t(back[size_t(j * 8 + 1)]); };
      for (int64_t r = 0; r < rows; ++r) {
        if (ba.rows[size_t(rows - 1 - r)].score_token < 0)  // a row that scores a given token samples none
          CHECK(id_at(2 * r) == got_a.tokens[size_t(rows - 1 - r)]);
        CHECK(id_at(2 * r + 1) == untouched);
      }
    }
  }
}

TEST_CASE("cuda sample timings (printed)", "[cuda]") {
  auto gpu = gpu_or_skip(dtype::bf16);
  if (!gpu) return;
  std::mt19937 rng(13);
  for (int64_t vocab : {32000, 128256}) {
    const int64_t rows = 256;
    tensor t = upload(*gpu, random_values(size_t(rows * vocab), rng, 2.0f), {rows, vocab});
    for (int kind = 0; kind < 3; ++kind) {
      sampling_batch b;
      for (int64_t r = 0; r < rows; ++r) {
        row_recipe rc;
        rc.temperature = kind == 0 ? 0.0f : 1.0f;
        rc.top_p = kind == 1 ? 0.9f : 1.0f;
        rc.top_k = kind == 2 ? 50 : 0;
        rc.uniform = double(r) / double(rows);
        b.rows.push_back(rc);
      }
      sample_result out;
      gpu->sample(t, b, out);  // warm-up: buffers grow once
      const int reps = 20;
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < reps; ++i) gpu->sample(t, b, out);
      const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / reps;
      std::printf("timing: sample %s, %lld x %lld bf16: %.1f us a call (host to host); GPU time of %d calls:\n",
                  kind == 0 ? "greedy" : kind == 1 ? "temperature 1, top-p 0.9" : "temperature 1, top-k 50",
                  (long long)rows, (long long)vocab, us, reps);
      cuda_profile(*gpu, true);
      for (int i = 0; i < reps; ++i) gpu->sample(t, b, out);
      std::printf("%s", cuda_profile_report(*gpu).c_str());
      cuda_profile(*gpu, false);
    }
    CHECK(cuda_backend_error(*gpu).empty());
  }
}
