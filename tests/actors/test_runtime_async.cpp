// Steps in flight through the actor runtime: outputs with 1, 2 and 3 steps in flight equal
// engine::llm's one step at a time (greedy, seeded n samples, stop strings and ids, preemption under
// a small cache); an executor failure with several steps in flight requeues each request once.
#include "runtime_helpers.hpp"

using namespace troupe;
using namespace troupe::test;

TEST_CASE("runtime outputs with 1, 2 and 3 steps in flight equal engine::llm's one step at a time", "[actors]") {
  const auto in = mixed_requests();
  auto o = small_engine();
  o.kv_cache_blocks = 20;  // preemption
  o.admission_reserve = 0;
  o.steps_in_flight = 1;
  const auto want = ref().run(in, o);
  for (int32_t k : {1, 2, 3}) {
    INFO(k << " steps in flight");
    auto ro = options_for(o);
    ro.steps_in_flight = k;
    auto rt = start(ro);
    require_equal(want, through_runtime(*rt, in));
    const auto m = rt->metrics();
    CHECK(m.preemptions > 0);
    CHECK(m.kv_blocks_used == 0);
    CHECK(m.requests_running == 0);
  }
}

TEST_CASE("an executor failure with 2 and 3 steps in flight requeues each request once", "[actors]") {
  std::vector<engine::llm_request> in;
  for (const auto& p : story_prompts()) {
    engine::llm_request r;
    r.prompt = p;
    r.params.max_tokens = 30;
    r.params.ignore_eos = true;
    r.params.sampling.temperature = 0.0f;
    in.push_back(r);
  }
  auto o = small_engine();
  o.steps_in_flight = 1;
  const auto want = ref().run(in, o);
  for (int32_t k : {2, 3}) {
    INFO(k << " steps in flight");
    auto plan = std::make_shared<failure_plan>();
    plan->failing_instances = 2;  // the first executor and its first replacement fail
    plan->fail_after_steps = 5;
    auto ro = with_plan(options_for(o), plan);
    ro.steps_in_flight = k;
    auto rt = start(ro);
    const auto got = through_runtime(*rt, in);
    require_equal(want, got);
    for (const auto& g : got) CHECK(g[0].ids.size() == 30);  // no token twice, none lost
    CHECK(plan->instances.load() == 3);
    const auto m = rt->metrics();
    CHECK(m.requests_finished.at("length") == in.size());  // each request ended once
    CHECK(m.generation_tokens == 30 * in.size());
    CHECK(m.kv_blocks_used == 0);
    CHECK(m.requests_running == 0);
  }
}
