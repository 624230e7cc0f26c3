// Checks troupe's CPU model against Hugging Face transformers on the random-weight fixtures of
// tests/fixtures/hf (one folder per supported model shape, made by scripts/make_hf_fixtures.py).
//
// Metric: for each prompt, max_v |troupe[v] - hf[v]| / max_v |hf[v]| over the last position's logits must
// be at most the fixture's tolerance (1e-4), and the argmax must be equal at every position. The same holds
// with chunked prefill (chunks of 5 tokens). The script only keeps prompts whose top-2 logit gap is at least
// 1e-3 of the largest |logit| at every position, so an argmax mismatch is a real disagreement.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "engine/model/sequence_runner.hpp"

namespace {

namespace fs = std::filesystem;

struct prompt_case {
  std::vector<int32_t> ids;
  std::vector<int64_t> argmax;      // transformers' argmax at every position
  std::vector<float> last_logits;   // transformers' logits at the last position, all of the vocabulary
};

struct fixture {
  std::string name;
  fs::path dir;
  int64_t vocab_size = 0;
  double tolerance = 0;
  std::vector<prompt_case> prompts;
};

fs::path fixtures_root() { return fs::path(TROUPE_SOURCE_DIR) / "tests" / "fixtures" / "hf"; }

// Every folder under tests/fixtures/hf, sorted by name.
std::vector<fs::path> fixture_dirs() {
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fixtures_root(), ec))
    if (entry.is_directory()) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

// Reads DIR/expected.json; fails the test (with the reason) where it is missing or malformed.
fixture read_fixture(const fs::path& dir) {
  fixture f;
  f.name = dir.filename().string();
  f.dir = dir;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  const auto path = (dir / "expected.json").string();
  INFO(path);
  REQUIRE(parser.load(path).get(doc) == simdjson::SUCCESS);
  REQUIRE(doc["vocab_size"].get_int64().get(f.vocab_size) == simdjson::SUCCESS);
  REQUIRE(doc["tolerance"].get_double().get(f.tolerance) == simdjson::SUCCESS);
  simdjson::dom::array prompts;
  REQUIRE(doc["prompts"].get_array().get(prompts) == simdjson::SUCCESS);
  for (simdjson::dom::element p : prompts) {
    prompt_case c;
    simdjson::dom::array ids, argmax, logits;
    REQUIRE(p["ids"].get_array().get(ids) == simdjson::SUCCESS);
    REQUIRE(p["argmax"].get_array().get(argmax) == simdjson::SUCCESS);
    REQUIRE(p["last_logits"].get_array().get(logits) == simdjson::SUCCESS);
    for (simdjson::dom::element v : ids) {
      int64_t id = 0;
      REQUIRE(v.get_int64().get(id) == simdjson::SUCCESS);
      c.ids.push_back(static_cast<int32_t>(id));
    }
    for (simdjson::dom::element v : argmax) {
      int64_t a = 0;
      REQUIRE(v.get_int64().get(a) == simdjson::SUCCESS);
      c.argmax.push_back(a);
    }
    for (simdjson::dom::element v : logits) {
      double x = 0;
      REQUIRE(v.get_double().get(x) == simdjson::SUCCESS);
      c.last_logits.push_back(static_cast<float>(x));
    }
    REQUIRE(!c.ids.empty());
    REQUIRE(c.argmax.size() == c.ids.size());
    REQUIRE(static_cast<int64_t>(c.last_logits.size()) == f.vocab_size);
    f.prompts.push_back(std::move(c));
  }
  REQUIRE(!f.prompts.empty());
  REQUIRE(f.tolerance > 0);
  REQUIRE(f.tolerance <= 1e-4);  // the fixture may ask for more, never for less
  return f;
}

// max_v |got[v] - want[v]| / max_v |want[v]|
double relative_error(std::span<const float> got, std::span<const float> want) {
  double diff = 0, scale = 0;
  for (size_t v = 0; v < want.size(); ++v) {
    diff = std::max(diff, std::abs(static_cast<double>(got[v]) - want[v]));
    scale = std::max(scale, std::abs(static_cast<double>(want[v])));
  }
  return diff / scale;
}

// The first index of the largest value, as torch.argmax.
int64_t argmax(std::span<const float> row) {
  return std::max_element(row.begin(), row.end()) - row.begin();
}

// Runs one prompt through troupe (chunk_size 0: the whole prompt in one step) and checks it against
// transformers.
void check_prompt(const fixture& f, const prompt_case& c, int chunk_size) {
  const auto n = static_cast<int64_t>(c.ids.size());
  INFO("fixture " << f.name << ", prompt of " << n << " tokens, chunk_size " << chunk_size);
  auto logits = troupe::engine::compute_prompt_logits(f.dir, c.ids, chunk_size);
  if (!logits) FAIL(logits.error().message);
  REQUIRE(static_cast<int64_t>(logits->size()) == n * f.vocab_size);
  auto row = [&](int64_t i) { return std::span<const float>(logits->data() + i * f.vocab_size, f.vocab_size); };
  const double err = relative_error(row(n - 1), c.last_logits);
  INFO("last-position relative error " << err << " (tolerance " << f.tolerance << ")");
  CHECK(err <= f.tolerance);
  int64_t wrong = 0, first_wrong = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (argmax(row(i)) != c.argmax[i]) {
      if (first_wrong < 0) first_wrong = i;
      ++wrong;
    }
  }
  INFO("positions whose argmax differs: " << wrong << ", the first at " << first_wrong);
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("hf fixtures: every supported model shape has a fixture", "[hf]") {
  // Shapes the script makes; a folder missing (or none at all) fails here rather than passing silently.
  const std::set<std::string> wanted = {"llama_gqa",         "llama_mha_tied",       "llama3_rope",
                                        "llama_linear_rope", "llama_attention_bias", "mistral_swa",
                                        "qwen2_bias_tied",   "llama_sharded"};
  std::set<std::string> found;
  for (const auto& dir : fixture_dirs()) found.insert(dir.filename().string());
  INFO("fixtures under " << fixtures_root().string());
  REQUIRE(!found.empty());
  for (const auto& name : wanted) {
    INFO("missing fixture " << name);
    CHECK(found.count(name) == 1);
  }
}

TEST_CASE("hf fixtures: logits agree with transformers, whole and chunked prefill", "[hf]") {
  const auto dirs = fixture_dirs();
  REQUIRE(!dirs.empty());
  for (const auto& dir : dirs) {
    DYNAMIC_SECTION(dir.filename().string()) {
      const fixture f = read_fixture(dir);
      for (const auto& c : f.prompts) {
        check_prompt(f, c, 0);
        check_prompt(f, c, 5);
      }
    }
  }
}

TEST_CASE("hf fixtures: the comparison tells fixtures apart", "[hf]") {
  // The check is not vacuous: another model's logits for the same ids fail the tolerance.
  const fixture a = read_fixture(fixtures_root() / "llama_gqa");
  const fixture b = read_fixture(fixtures_root() / "llama_sharded");
  REQUIRE(a.vocab_size == b.vocab_size);
  const auto& c = a.prompts.back();
  auto other = troupe::engine::compute_prompt_logits(b.dir, c.ids);
  if (!other) FAIL(other.error().message);
  const auto n = static_cast<int64_t>(c.ids.size());
  REQUIRE(static_cast<int64_t>(other->size()) == n * b.vocab_size);
  std::span<const float> last(other->data() + (n - 1) * b.vocab_size, b.vocab_size);
  CHECK(relative_error(last, c.last_logits) > 100 * a.tolerance);
}
