// Tests for the sampler: greedy ties, the exact candidate sets of top-k/top-p/min-p, seeded
// reproducibility, and empirical frequencies against the expected distribution.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "engine/sampling/sampler.hpp"
#include "kernels/cpu/sampling_reference.hpp"

using namespace troupe::engine;

namespace {

std::vector<double> frequencies(sampler& s, const std::vector<float>& logits, int draws) {
  std::vector<double> f(logits.size(), 0.0);
  for (int i = 0; i < draws; ++i) f[s.sample(logits)] += 1.0 / draws;
  return f;
}

std::vector<double> softmax(const std::vector<float>& logits, double t) {
  std::vector<double> p(logits.size());
  double m = *std::max_element(logits.begin(), logits.end()), sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += p[i] = std::exp((logits[i] - m) / t);
  for (auto& x : p) x /= sum;
  return p;
}

}  // namespace

TEST_CASE("greedy picks the first of equal maxima") {
  sampler s(sampling_params{.temperature = 0.0f}, 1);
  std::vector<float> l{0.5f, 2.0f, -1.0f, 2.0f};
  CHECK(s.sample(l) == 1);
  CHECK(argmax(l) == 1);
}

TEST_CASE("temperature sampling follows softmax(logits / T)") {
  std::vector<float> l{1.0f, 2.0f, 0.0f, 3.0f, -1.0f};
  for (float t : {0.5f, 1.0f, 2.0f}) {
    sampler s(sampling_params{.temperature = t}, 7);
    auto f = frequencies(s, l, 200000);
    auto p = softmax(l, t);
    for (size_t i = 0; i < l.size(); ++i) {
      double sd = std::sqrt(p[i] * (1 - p[i]) / 200000);
      CHECK(std::abs(f[i] - p[i]) < 5 * sd + 1e-9);
    }
  }
}

TEST_CASE("top-k keeps exactly the k most likely tokens, renormalised") {
  std::vector<float> l{1.0f, 2.0f, 0.0f, 3.0f, -1.0f};
  sampler s(sampling_params{.temperature = 1.0f, .top_k = 2}, 3);
  auto f = frequencies(s, l, 100000);
  CHECK(f[0] == 0.0);
  CHECK(f[2] == 0.0);
  CHECK(f[4] == 0.0);
  double p3 = std::exp(3.0) / (std::exp(3.0) + std::exp(2.0));
  CHECK(std::abs(f[3] - p3) < 0.01);
  sampler one(sampling_params{.temperature = 1.0f, .top_k = 1}, 3);
  for (int i = 0; i < 100; ++i) CHECK(one.sample(l) == 3);
}

TEST_CASE("top-p keeps the smallest prefix reaching p") {
  // probabilities 0.5, 0.25, 0.125, 0.125 (logits are log-probabilities)
  std::vector<float> l{std::log(0.125f), std::log(0.5f), std::log(0.25f), std::log(0.125f)};
  sampler s(sampling_params{.temperature = 1.0f, .top_p = 0.7f}, 5);
  s.sample(l);
  auto p = s.last_probs();
  CHECK(p[0] == 0.0f);
  CHECK(p[3] == 0.0f);
  CHECK(p[1] == Approx(2.0 / 3));
  CHECK(p[2] == Approx(1.0 / 3));
  auto f = frequencies(s, l, 60000);
  CHECK(f[0] == 0.0);
  CHECK(f[3] == 0.0);
  CHECK(std::abs(f[1] - 2.0 / 3) < 0.015);
}

TEST_CASE("min-p drops tokens below min_p times the top probability") {
  std::vector<float> l{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  sampler s(sampling_params{.temperature = 1.0f, .min_p = 0.4f}, 9);
  s.sample(l);
  auto p = s.last_probs();
  CHECK(p[2] == 0.0f);  // 0.15 < 0.4 * 0.5
  CHECK(p[3] == 0.0f);
  CHECK(p[0] == Approx(0.5 / 0.8));
}

TEST_CASE("the same seed gives the same tokens; another seed differs") {
  std::vector<float> l(50);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(std::sin(i * 1.7));
  auto run = [&](uint64_t seed) {
    sampler s(sampling_params{.temperature = 1.0f, .seed = seed}, 0);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.sample(l));
    return out;
  };
  CHECK(run(42) == run(42));
  CHECK(run(42) != run(43));
}

TEST_CASE("parameters out of range are named") {
  CHECK(validate(sampling_params{}));
  auto e = validate(sampling_params{.temperature = -1.0f});
  REQUIRE_FALSE(e);
  CHECK(e.error().message.find("temperature") != std::string::npos);
  CHECK_FALSE(validate(sampling_params{.top_p = 0.0f}));
  CHECK_FALSE(validate(sampling_params{.top_k = -2}));
  CHECK_FALSE(validate(sampling_params{.min_p = 1.5f}));
}

namespace {

/// The distribution a sampler with these adjustments draws from (at temperature 1), after the
/// prompt and the generated tokens it is told about.
std::vector<float> adjusted_probs(sampling_params p, const std::vector<float>& logits,
                                  const std::vector<int32_t>& prompt,
                                  const std::vector<int32_t>& generated) {
  p.temperature = 1.0f;
  sampler s(p, 1);
  s.set_prompt(prompt);
  for (int32_t t : generated) s.record(t);
  s.sample(logits);
  return s.last_probs();
}

double log_ratio(const std::vector<float>& p, int a, int b) { return std::log(p[a] / p[b]); }

}  // namespace

TEST_CASE("logit bias adds to exactly the named logits") {
  std::vector<float> l{0.0f, 0.0f, 0.0f, 0.0f};
  auto p = adjusted_probs(sampling_params{.logit_bias = {{2, 1.5f}, {3, -100.0f}}}, l, {}, {});
  CHECK(log_ratio(p, 2, 0) == Approx(1.5).margin(1e-5));
  CHECK(log_ratio(p, 1, 0) == Approx(0.0).margin(1e-6));
  CHECK(p[3] < 1e-40);
}

TEST_CASE("presence and frequency penalties subtract per generated token") {
  std::vector<float> l{1.0f, 1.0f, 1.0f, 1.0f};
  auto p = adjusted_probs(sampling_params{.presence_penalty = 0.5f, .frequency_penalty = 0.25f}, l,
                          {1}, {2, 2, 3});
  // token 2: 0.5 + 2 * 0.25 = 1.0; token 3: 0.5 + 0.25; tokens 0 and 1 (prompt only) untouched
  CHECK(log_ratio(p, 0, 2) == Approx(1.0).margin(1e-5));
  CHECK(log_ratio(p, 0, 3) == Approx(0.75).margin(1e-5));
  CHECK(log_ratio(p, 0, 1) == Approx(0.0).margin(1e-6));
}

TEST_CASE("repetition penalty divides positive and multiplies negative logits of seen tokens, once") {
  std::vector<float> l{2.0f, 2.0f, -1.0f, -1.0f, 0.5f};
  auto p = adjusted_probs(sampling_params{.repetition_penalty = 2.0f}, l, {0, 2}, {0, 0});
  // token 0 (prompt and output): 2 -> 1, not 0.5; token 2: -1 -> -2; tokens 1, 3, 4 untouched
  CHECK(log_ratio(p, 1, 0) == Approx(1.0).margin(1e-5));
  CHECK(log_ratio(p, 3, 2) == Approx(1.0).margin(1e-5));
  CHECK(log_ratio(p, 1, 4) == Approx(1.5).margin(1e-5));
}

TEST_CASE("sampled tokens count towards penalties") {
  std::vector<float> l{5.0f, 0.0f};
  sampler s(sampling_params{.temperature = 0.0f, .presence_penalty = 2.0f, .frequency_penalty = 2.0f}, 1);
  CHECK(s.sample(l) == 0);  // 5 vs 0
  CHECK(s.sample(l) == 0);  // 5 - 4 = 1 vs 0
  CHECK(s.sample(l) == 1);  // 5 - 6 = -1 vs 0
}

TEST_CASE("logprobs are log-softmax of the raw logits, with rank and top entries") {
  std::vector<float> l{1.0f, 3.0f, 2.0f, 3.0f};
  auto e = compute_logprobs(l, 2, 3);
  double z = std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(2.0));
  CHECK(e.chosen.token == 2);
  CHECK(e.chosen.logprob == Approx(2.0 - z));
  CHECK(e.rank == 3);
  REQUIRE(e.top.size() == 3);
  CHECK(e.top[0].token == 1);
  CHECK(e.top[1].token == 3);
  CHECK(e.top[2].token == 2);
  CHECK(e.top[0].logprob == Approx(3.0 - z));
}

TEST_CASE("penalty and bias ranges are checked") {
  CHECK_FALSE(validate(sampling_params{.repetition_penalty = 0.0f}));
  CHECK_FALSE(validate(sampling_params{.presence_penalty = 2.5f}));
  CHECK_FALSE(validate(sampling_params{.frequency_penalty = -3.0f}));
  CHECK_FALSE(validate(sampling_params{.logit_bias = {{5, 1.0f}}}, 4));
  CHECK_FALSE(validate(sampling_params{.logit_bias = {{1, 101.0f}}}, 4));
  CHECK(validate(sampling_params{.logit_bias = {{3, -100.0f}}}, 4));
}

TEST_CASE("a backend following the sampler's recipes picks the tokens sample() picked before recipes") {
  // What the engine does on a GPU: next_recipe, the backend's op (here the CPU reference), record.
  // The expected tokens are those of the sampler before the algorithm moved to kernels/cpu
  // (commit 2249176), with every adjustment, top-k and top-p, greedy and seeded.
  const std::vector<int32_t> before[2] = {
      {225, 242, 208, 259, 191, 276, 174, 293, 157, 140, 123, 106, 89,  72,  55,  38,  21,
       4,   5,   22,  39,  56,  73,  90,  107, 124, 141, 158, 292, 175, 275, 192, 258, 209,
       241, 226, 224, 243, 207, 260, 190, 277, 173, 294, 156, 139, 7,   122, 105, 88},
      {21,  4,   258, 275, 293, 225, 243, 276, 207, 242, 72,  90,  38,  123, 22,  5,   209,
       105, 124, 107, 73,  241, 192, 157, 174, 226, 259, 106, 158, 294, 260, 175, 140, 6,
       7,   208, 224, 39,  89,  71,  291, 223, 190, 37,  210, 55,  156, 57,  159, 277}};
  std::vector<float> l(300);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(std::sin(double(i) * 0.37) * 3.0);
  for (int k = 0; k < 2; ++k) {
    const float t = k == 0 ? 0.0f : 0.7f;
    sampling_params p{.temperature = t, .top_p = 0.9f, .top_k = 40, .repetition_penalty = 1.3f,
                      .presence_penalty = 0.4f, .frequency_penalty = 0.2f, .logit_bias = {{7, 2.0f}}, .seed = 9};
    sampler direct(p, 0), by_recipe(p, 0);
    const std::vector<int32_t> prompt{1, 2, 3, 7};
    direct.set_prompt(prompt);
    by_recipe.set_prompt(prompt);
    std::vector<int32_t> got_direct, got_recipe;
    for (int step = 0; step < 50; ++step) {
      std::vector<troupe::kernels::logit_adjustment> adj;
      const auto recipe = by_recipe.next_recipe(adj);
      CHECK(recipe.num_adjustments == adj.size());
      if (t == 0.0f) CHECK(recipe.uniform == 0.0);  // greedy draws nothing from the stream
      const int32_t token = troupe::kernels::cpu::sample_row(l, recipe, adj, nullptr);
      by_recipe.record(token);
      got_recipe.push_back(token);
      got_direct.push_back(direct.sample(l));
    }
    CHECK(got_direct == before[k]);
    CHECK(got_recipe == before[k]);
  }
}
