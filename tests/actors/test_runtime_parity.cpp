// Outputs through the actor runtime equal engine::llm's for the same prompts and seeds: greedy,
// seeded sampling with n samples, stop strings and stop ids, text prompts tokenised by the pool.
#include "runtime_helpers.hpp"

using namespace troupe;
using namespace troupe::test;

namespace {



}  // namespace

TEST_CASE("greedy text prompts through the runtime equal engine::llm", "[actors]") {
  std::vector<engine::llm_request> in;
  for (const auto& p : story_prompts()) {
    engine::llm_request r;
    r.prompt = p;
    r.params.max_tokens = 24;
    r.params.sampling.temperature = 0.0f;
    in.push_back(r);
  }
  const auto o = small_engine();
  const auto want = ref().run(in, o);
  auto rt = start(options_for(o));
  const auto got = through_runtime(*rt, in);
  require_equal(want, got);
  for (const auto& g : got) CHECK(g[0].ids.size() > 0);
}

TEST_CASE("seeded sampling with n samples, stop strings and stop ids equal engine::llm", "[actors]") {
  std::vector<engine::llm_request> in;
  for (size_t i = 0; i < story_prompts().size(); ++i) {
    engine::llm_request r;
    r.prompt = story_prompts()[i];
    r.params.max_tokens = 20 + int64_t(i);
    r.params.sampling.temperature = 0.8f;
    r.params.sampling.top_p = 0.9f;
    r.params.sampling.seed = 1234 + i;
    r.params.n = i % 2 == 0 ? 3 : 1;
    in.push_back(r);
  }
  in[1].params.stop = {" the", "."};
  in[2].params.stop = {"ball"};
  in[3].params.sampling.temperature = 0.0f;
  in[3].params.stop_token_ids = {ref().tok->encode(" the", false)->front()};
  const auto o = small_engine();
  const auto want = ref().run(in, o);
  bool some_stop = false;
  for (const auto& w : want)
    for (const auto& s : w.samples) some_stop = some_stop || s.finish_reason == "stop";
  REQUIRE(some_stop);  // the case exercises stops
  auto rt = start(options_for(o));
  require_equal(want, through_runtime(*rt, in));
}

TEST_CASE("prompt ids, logprobs and prompt logprobs through the runtime equal engine::llm", "[actors]") {
  std::vector<engine::llm_request> in;
  for (size_t i = 0; i < 3; ++i) {
    engine::llm_request r;
    r.prompt_ids = *ref().tok->encode(story_prompts()[i]);
    r.params.max_tokens = 8;
    r.params.sampling.temperature = 0.0f;
    r.params.logprobs = 2;
    r.params.prompt_logprobs = 1;
    in.push_back(r);
  }
  const auto o = small_engine();
  const auto want = ref().run(in, o);
  auto rt = start(options_for(o));
  for (size_t i = 0; i < in.size(); ++i) {
    submit_request s;
    s.prompt_ids = in[i].prompt_ids;
    s.params = in[i].params;
    auto st = rt->submit(s);
    REQUIRE(st.has_value());
    std::vector<engine::logprobs_entry> lps;
    std::vector<int32_t> ids;
    while (!(*st)->done()) {
      auto ev = (*st)->next(std::chrono::milliseconds(100));
      if (!ev) continue;
      ids.insert(ids.end(), ev->token_ids.begin(), ev->token_ids.end());
      lps.insert(lps.end(), ev->logprobs.begin(), ev->logprobs.end());
    }
    CHECK(ids == want[i].samples[0].output_ids);
    CHECK((*st)->prompt_ids() == want[i].prompt_ids);
    REQUIRE(lps.size() == want[i].samples[0].logprobs.size());
    for (size_t t = 0; t < lps.size(); ++t) {
      CHECK(lps[t].chosen.token == want[i].samples[0].logprobs[t].chosen.token);
      CHECK(lps[t].chosen.logprob == Approx(want[i].samples[0].logprobs[t].chosen.logprob).margin(1e-4));
      CHECK(lps[t].top.size() == 2);
    }
    const auto plp = (*st)->prompt_logprobs();
    REQUIRE(plp.size() == want[i].prompt_logprobs.size());
    REQUIRE(plp.size() == want[i].prompt_ids.size() - 1);
    for (size_t t = 0; t < plp.size(); ++t) {
      CHECK(plp[t].chosen.token == want[i].prompt_logprobs[t].chosen.token);
      CHECK(plp[t].chosen.logprob == Approx(want[i].prompt_logprobs[t].chosen.logprob).margin(1e-4));
    }
  }
}

TEST_CASE("submit rejects bad parameters with invalid_argument at once", "[actors]") {
  auto rt = start(options_for(small_engine()));
  submit_request r;
  r.prompt = "Once";
  r.params.n = 0;
  auto a = rt->submit(r);
  REQUIRE_FALSE(a.has_value());
  CHECK(a.error().code == errc::invalid_argument);
  r.params.n = 1;
  r.params.sampling.temperature = -1.0f;
  auto b = rt->submit(r);
  REQUIRE_FALSE(b.has_value());
  CHECK(b.error().code == errc::invalid_argument);
  r.params.sampling.temperature = 0.0f;
  r.prompt = std::string(20000, 'a');  // longer than the whole cache once tokenised
  auto c = rt->submit(r);
  REQUIRE_FALSE(c.has_value());
  CHECK(c.error().code == errc::invalid_argument);
  r.prompt = "\xff\xfe";  // invalid UTF-8: the tokenizer actor's error
  auto d = rt->submit(r);
  REQUIRE_FALSE(d.has_value());
  CHECK(d.error().code == errc::invalid_argument);
  r.prompt.clear();
  r.prompt_ids = {1, int32_t(rt->model_config().vocab_size)};
  auto e = rt->submit(r);
  REQUIRE_FALSE(e.has_value());
  CHECK(e.error().code == errc::invalid_argument);
  CHECK(rt->metrics().requests_rejected == 5);
  CHECK(rt->ready());
  CHECK(rt->served_model_name() == "stories260k");
  CHECK(rt->max_model_len() > 0);
}

TEST_CASE("with a cache too small for every request, preemption keeps outputs equal to engine::llm", "[actors]") {
  std::vector<engine::llm_request> in;
  for (size_t i = 0; i < 12; ++i) {
    engine::llm_request r;
    r.prompt = story_prompts()[i % story_prompts().size()];
    r.params.max_tokens = 40;
    r.params.ignore_eos = true;
    r.params.sampling.temperature = i % 3 == 0 ? 0.0f : 0.9f;
    r.params.sampling.seed = 99 + i;
    in.push_back(r);
  }
  auto o = small_engine();
  o.kv_cache_blocks = 14;  // about three requests' worth
  o.admission_reserve = 0;  // admitted while they fit now, so they preempt each other
  const auto want = ref().run(in, o);
  auto rt = start(options_for(o));
  require_equal(want, through_runtime(*rt, in));
  const auto m = rt->metrics();
  CHECK(m.preemptions > 0);
  CHECK(m.kv_blocks_used == 0);
}
