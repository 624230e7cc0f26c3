// Parity with Hugging Face transformers on stories260k: last-position logits, per-position argmax
// and 64 greedy tokens for every case of ../shared/golden/stories260k_hf.json.
#include <catch2/catch.hpp>

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "engine/model/llama_model.hpp"
#include "engine/model/sequence_runner.hpp"

using namespace troupe;
using namespace troupe::engine;

namespace {

const char* golden_path = TROUPE_SOURCE_DIR "/../shared/golden/stories260k_hf.json";

std::vector<int32_t> int_array(simdjson::dom::element c, const char* key) {
  simdjson::dom::array values;
  REQUIRE(c[key].get_array().get(values) == simdjson::SUCCESS);
  std::vector<int32_t> out;
  for (simdjson::dom::element v : values) {
    int64_t x = 0;
    REQUIRE(v.get_int64().get(x) == simdjson::SUCCESS);
    out.push_back(static_cast<int32_t>(x));
  }
  return out;
}

std::vector<double> double_array(simdjson::dom::element c, const char* key) {
  simdjson::dom::array values;
  REQUIRE(c[key].get_array().get(values) == simdjson::SUCCESS);
  std::vector<double> out;
  for (simdjson::dom::element v : values) {
    double x = 0;
    REQUIRE(v.get_double().get(x) == simdjson::SUCCESS);
    out.push_back(x);
  }
  return out;
}

int32_t argmax(const float* logits, size_t n) {
  return static_cast<int32_t>(std::max_element(logits, logits + n) - logits);
}

struct golden_case {
  std::string prompt;
  std::vector<int32_t> input_ids, greedy_ids, argmax_per_position;
  std::vector<double> last_logits;
};

std::vector<golden_case> read_cases() {
  REQUIRE(std::filesystem::exists(golden_path));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.load(golden_path).get(doc) == simdjson::SUCCESS);
  std::vector<golden_case> cases;
  simdjson::dom::array all;
  REQUIRE(doc["cases"].get_array().get(all) == simdjson::SUCCESS);
  for (simdjson::dom::element c : all) {
    golden_case g;
    std::string_view prompt;
    REQUIRE(c["prompt"].get_string().get(prompt) == simdjson::SUCCESS);
    g.prompt = std::string(prompt);
    g.input_ids = int_array(c, "input_ids");
    g.greedy_ids = int_array(c, "greedy_ids");
    g.argmax_per_position = int_array(c, "argmax_per_position");
    g.last_logits = double_array(c, "last_logits");
    cases.push_back(std::move(g));
  }
  REQUIRE(!cases.empty());
  return cases;
}

}  // namespace

TEST_CASE("stories260k prompt logits match transformers") {
  for (const auto& g : read_cases()) {
    INFO("prompt: " << g.prompt);
    auto whole = compute_prompt_logits(TROUPE_DEFAULT_MODEL, g.input_ids);
    REQUIRE(whole.has_value());
    for (int chunk : {0, 3}) {
      INFO("chunk size " << chunk);
      auto logits = compute_prompt_logits(TROUPE_DEFAULT_MODEL, g.input_ids, chunk);
      REQUIRE(logits.has_value());
      REQUIRE(*logits == *whole);  // the CPU backend computes a small model's rows alike, however fed
      const size_t vocab = g.last_logits.size(), n = g.input_ids.size();
      REQUIRE(logits->size() == n * vocab);
      double worst = 0;
      for (size_t i = 0; i < vocab; ++i)
        worst = std::max(worst, std::abs(double((*logits)[(n - 1) * vocab + i]) - g.last_logits[i]));
      INFO("largest last-position difference " << worst);
      REQUIRE(worst <= 1e-4);
      REQUIRE(g.argmax_per_position.size() == n);
      for (size_t p = 0; p < n; ++p) {
        INFO("position " << p);
        REQUIRE(argmax(logits->data() + p * vocab, vocab) == g.argmax_per_position[p]);
      }
    }
  }
}

TEST_CASE("stories260k greedy decoding matches transformers") {
  auto be = kernels::make_cpu_backend();
  auto model = llama_model::load(TROUPE_DEFAULT_MODEL, *be);
  REQUIRE(model.has_value());
  const auto& eos = (*model)->config().eos_token_ids;
  auto cache = (*model)->make_kv_cache_for_tokens((*model)->config().max_position_embeddings);
  sequence_runner runner(**model, *cache);
  for (const auto& g : read_cases()) {
    INFO("prompt: " << g.prompt);
    runner.reset();
    auto logits = runner.feed(g.input_ids);
    REQUIRE(logits.has_value());
    std::vector<int32_t> out;
    // Stop only where transformers stopped: after 64 tokens, or at EOS when the golden ends in one.
    while (out.size() < g.greedy_ids.size()) {
      int32_t next = argmax(logits->data(), logits->size());
      out.push_back(next);
      bool stop = std::find(eos.begin(), eos.end(), next) != eos.end();
      if (stop || out.size() == g.greedy_ids.size()) break;
      std::vector<int32_t> one = {next};
      logits = runner.feed(one);
      REQUIRE(logits.has_value());
    }
    REQUIRE(out == g.greedy_ids);
  }
}
