// The CPU reference of backend::sample (kernels/cpu/sampling_reference): the draw by the recipe's
// uniform, the cut order (top-k, top-p, min-p), adjustments in order, scored rows, logprobs, and the
// CPU backend's op equal to the reference row by row whatever the thread count.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/cpu/sampling_reference.hpp"

using namespace troupe::kernels;
namespace ref = troupe::kernels::cpu;

namespace {

row_recipe sampled(float temperature, double uniform) {
  row_recipe r;
  r.temperature = temperature;
  r.uniform = uniform;
  return r;
}

}  // namespace

TEST_CASE("the draw is the inverse CDF over candidates sorted by decreasing logit") {
  // probabilities 0.5 (id 1), 0.25 (id 2), 0.125 (id 0), 0.125 (id 3: after id 0, an equal logit)
  const std::vector<float> l{std::log(0.125f), std::log(0.5f), std::log(0.25f), std::log(0.125f)};
  CHECK(ref::draw(l, sampled(1.0f, 0.0)) == 1);
  CHECK(ref::draw(l, sampled(1.0f, 0.49)) == 1);
  CHECK(ref::draw(l, sampled(1.0f, 0.51)) == 2);
  CHECK(ref::draw(l, sampled(1.0f, 0.76)) == 0);
  CHECK(ref::draw(l, sampled(1.0f, 0.99)) == 3);
  row_recipe greedy;
  CHECK(ref::draw(l, greedy) == 1);
  CHECK(ref::argmax(std::vector<float>{1.0f, 3.0f, 3.0f}) == 1);
  CHECK(ref::argmax(std::vector<float>{0.0f, -0.0f}) == 0);  // -0 equals +0: the lower id
}

TEST_CASE("top-k, then top-p, then min-p cut the candidates") {
  const std::vector<float> l{std::log(0.125f), std::log(0.5f), std::log(0.25f), std::log(0.125f)};
  std::vector<float> p;
  row_recipe r = sampled(1.0f, 0.99);
  r.top_k = 3;  // ids 1, 2, 0; then top-p 0.7 keeps 1, 2
  r.top_p = 0.7f;
  CHECK(ref::draw(l, r, &p) == 2);
  REQUIRE(p.size() == 4);
  CHECK(p[0] == 0.0f);
  CHECK(p[1] == Approx(2.0 / 3));
  CHECK(p[2] == Approx(1.0 / 3));
  CHECK(p[3] == 0.0f);
  r = sampled(1.0f, 0.99);
  r.min_p = 0.3f;  // 0.125 < 0.3 * 0.5 goes, 0.25 stays
  CHECK(ref::draw(l, r, &p) == 2);
  CHECK(p[0] == 0.0f);
  CHECK(p[3] == 0.0f);
  r = sampled(1.0f, 0.99);
  r.top_k = 1;
  CHECK(ref::draw(l, r) == 1);
}

TEST_CASE("adjustments apply in the order given") {
  using k = logit_adjustment::kind;
  std::vector<float> l{2.0f, -1.0f, 4.0f, 1.0f};
  const std::vector<logit_adjustment> adj{{0, k::add, 2.0f},       // 4
                                          {0, k::penalise, 2.0f},  // 2
                                          {0, k::subtract, 0.5f},  // 1.5
                                          {1, k::penalise, 2.0f},  // -2
                                          {9, k::add, 100.0f},     // outside: ignored
                                          {-1, k::add, 100.0f}};
  ref::apply_adjustments(l, adj);
  CHECK(l == std::vector<float>{1.5f, -2.0f, 4.0f, 1.0f});
  row_recipe greedy;
  const std::vector<float> raw{2.0f, -1.0f, 1.0f};
  const std::vector<logit_adjustment> bias{{2, k::add, 5.0f}};
  logprobs_entry e;
  greedy.logprobs = 1;
  CHECK(ref::sample_row(raw, greedy, bias, &e) == 2);
  // logprobs are of the raw row: token 2 is second there
  CHECK(e.chosen.token == 2);
  CHECK(e.rank == 2);
  REQUIRE(e.top.size() == 1);
  CHECK(e.top[0].token == 0);
}

TEST_CASE("a scored row returns its token and its logprobs without drawing") {
  const std::vector<float> raw{1.0f, 3.0f, 2.0f, 3.0f};
  row_recipe r = sampled(1.0f, 0.5);
  r.score_token = 2;
  r.logprobs = 2;
  logprobs_entry e;
  CHECK(ref::sample_row(raw, r, {}, &e) == 2);
  const double z = std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(2.0));
  CHECK(e.chosen.logprob == Approx(2.0 - z));
  CHECK(e.rank == 3);
  REQUIRE(e.top.size() == 2);
  CHECK(e.top[0].token == 1);
  CHECK(e.top[1].token == 3);
}

TEST_CASE("the CPU backend's sample op is the reference row by row, whatever the threads") {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  const int64_t rows = 40, vocab = 3000;
  std::vector<float> values(size_t(rows * vocab));
  for (auto& v : values) v = std::round(normal(rng) * 4.0f) / 4.0f;  // ties
  sampling_batch b;
  for (int64_t r = 0; r < rows; ++r) {
    row_recipe rc = sampled(r % 4 == 0 ? 0.0f : 0.8f, double(rng() % 1000) / 1000.0);
    rc.top_k = int32_t(r % 3) * 20;
    rc.top_p = r % 5 == 0 ? 0.8f : 1.0f;
    rc.min_p = r % 7 == 0 ? 0.1f : 0.0f;
    rc.logprobs = r % 2 == 0 ? int32_t(r % 6) : -1;
    if (r % 9 == 0) rc.score_token = int32_t(r);
    rc.first_adjustment = uint32_t(b.adjustments.size());
    if (r % 3 == 0)
      for (int a = 0; a < 5; ++a)
        b.adjustments.push_back({int32_t(rng() % vocab), logit_adjustment::kind::add, 3.0f});
    rc.num_adjustments = uint32_t(b.adjustments.size() - rc.first_adjustment);
    b.rows.push_back(rc);
  }
  sample_result one, many;
  auto single = make_cpu_backend(1), multi = make_cpu_backend(4);
  for (auto* be : {single.get(), multi.get()}) {
    tensor t = be->alloc({rows, vocab});
    be->copy_to_device(values, t);
    be->sample(t, b, be == single.get() ? one : many);
  }
  CHECK(one.tokens == many.tokens);
  for (int64_t r = 0; r < rows; ++r) {
    const row_recipe& rc = b.rows[size_t(r)];
    logprobs_entry e;
    const int32_t want = ref::sample_row({values.data() + r * vocab, size_t(vocab)}, rc,
                                         {b.adjustments.data() + rc.first_adjustment, rc.num_adjustments}, &e);
    CHECK(one.tokens[size_t(r)] == want);
    CHECK(many.logprobs[size_t(r)].rank == e.rank);
    CHECK(many.logprobs[size_t(r)].top.size() == e.top.size());
    if (rc.score_token >= 0) CHECK(want == rc.score_token);
  }
}
