// The admission reserve: admission keeps part of the running requests' room to grow free in the KV
// cache, so that what it admits need not be preempted later; the reserve falls while nothing is
// preempted and rises when something is.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>

#include "engine/core/scheduler.hpp"
#include "tests/engine/scheduler_steps.hpp"

using namespace troupe::engine;
using namespace troupe::engine::testing;

namespace {

struct run_figures {
  size_t most_running = 0;
  uint64_t preemptions = 0;
  uint64_t steps = 0;
};

// Eight requests of 8 prompt tokens and 24 outputs (8 blocks of 4 each in the end) through a cache of
// 16 blocks: room for two of them at their full length. `params` changes their parameters.
run_figures run_to_end(scheduler_options o, const std::function<void(request_params&)>& params = {}) {
  scheduler s(o);
  for (request_id id = 1; id <= 8; ++id) {
    request_params p;
    p.max_tokens = 24;
    if (params) params(p);
    REQUIRE(s.add_request(request(id, range(100 + int32_t(id) * 50, 8), p, ids{2})));
  }
  run_figures f;
  schedule_output out;
  while (s.has_unfinished()) {
    step(s, out);
    f.most_running = std::max(f.most_running, s.num_running());
    REQUIRE(f.steps++ < 1000);
  }
  f.preemptions = s.stats().preemptions;
  return f;
}

}  // namespace

TEST_CASE("with the whole room to grow reserved, admission never overcommits the cache") {
  scheduler_options o = opts(16, 4, 64);
  o.admission_reserve = 1.0;
  o.admission_reserve_floor = 1.0;
  const run_figures full = run_to_end(o);
  CHECK(full.preemptions == 0);
  CHECK(full.most_running == 2);  // two requests of 8 blocks fill the 16

  o.admission_reserve = 0;  // admit what fits now: more run at first, and they preempt each other
  const run_figures now = run_to_end(o);
  CHECK(now.most_running > 2);
  CHECK(now.preemptions > 0);
}

TEST_CASE("the reserve counts a running request's prompt still to come and its outputs up to max_tokens") {
  scheduler_options o = opts(16, 4, 4);  // 4 tokens a step: the 8-token prompts take two steps
  o.admission_reserve = 1.0;
  o.admission_reserve_floor = 1.0;
  scheduler s(o);
  REQUIRE(s.add_request(make(1, 8, 24)));
  REQUIRE(s.add_request(make(2, 8, 24)));
  REQUIRE(s.add_request(make(3, 8, 24)));
  schedule_output out;
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 4}});  // the budget is spent on 1's first chunk
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 4}});
  step(s, out);  // 1 decodes; 2 fits beside it (1 and 2 need 8 blocks each in the end)
  REQUIRE(plan(out) == plan_t{{1, 1}, {2, 3}});
  for (int i = 0; i < 6; ++i) step(s, out);
  CHECK(s.num_running() == 2);  // 3 waits for a whole request's room
  CHECK(s.num_waiting() == 1);
}

TEST_CASE("a request alone starts whatever its room to grow") {
  scheduler_options o = opts(4, 4, 64);  // 16 tokens of cache
  o.admission_reserve = 1.0;
  o.admission_reserve_floor = 1.0;
  scheduler s(o);
  REQUIRE(s.add_request(make(1, 4, 1000)));  // may grow to the length limit, far past the cache
  schedule_output out;
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 4}});
}

TEST_CASE("the reserve falls over the decay steps without preemption, to its floor, and rises with one") {
  scheduler_options o = opts(4, 2, 64);
  o.admission_reserve = 0.5;
  o.admission_reserve_floor = 0.1;
  o.admission_reserve_decay_steps = 4;
  scheduler s(o);
  CHECK(s.stats().admission_reserve == Approx(0.5));
  REQUIRE(s.add_request(make(1, 3, 5)));
  schedule_output out;
  step(s, out);
  CHECK(s.stats().admission_reserve == Approx(0.4));
  for (int i = 0; i < 6; ++i) step(s, out);
  CHECK(s.stats().admission_reserve == Approx(0.1));

  // With a floor of 0, once the reserve is down to it: two requests that outgrow the cache are
  // admitted together, one preempts the other, and the reserve rises by 0.1 in that step.
  o.admission_reserve_floor = 0;
  scheduler t(o);
  for (int i = 0; i < 4; ++i) step(t, out);  // idle steps count too
  REQUIRE(t.stats().admission_reserve == Approx(0.0).margin(1e-12));
  REQUIRE(t.add_request(make(1, 3, 5)));
  REQUIRE(t.add_request(make(2, 3, 5)));
  double before = 0;
  for (int i = 0; i < 20 && t.stats().preemptions == 0; ++i) {
    before = t.stats().admission_reserve;
    step(t, out);
  }
  REQUIRE(t.stats().preemptions == 1);
  CHECK(t.stats().admission_reserve == Approx(before + 0.1));
}

TEST_CASE("an admission reserve outside [0, 1] is an error naming it") {
  scheduler_options o = opts(4, 2, 64);
  o.admission_reserve = 1.5;
  auto bad = validate(o);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::Contains("admission_reserve"));
  o.admission_reserve = 0.5;
  o.admission_reserve_floor = -0.1;
  REQUIRE_FALSE(validate(o));
  o.admission_reserve_floor = 0.1;
  o.admission_reserve_decay_steps = 0;
  REQUIRE_FALSE(validate(o));
}

TEST_CASE("a request that cannot end before max_tokens has its whole growth reserved") {
  // A low reserve with its floor there too: requests that may stop at EOS are admitted beside each
  // other and preempt one another later; the same requests with ignore_eos (no stop ids or strings)
  // certainly reach max_tokens, so admission waits for their whole room and none is preempted.
  scheduler_options o = opts(16, 4, 64);
  o.admission_reserve = 0.1;
  o.admission_reserve_floor = 0.1;
  const run_figures may_stop = run_to_end(o);
  CHECK(may_stop.most_running > 2);
  CHECK(may_stop.preemptions > 0);

  const auto certain = [&](bool with_stop_id) {
    return run_to_end(o, [&](request_params& p) {
      p.ignore_eos = true;
      if (with_stop_id) p.stop_token_ids = {9};
    });
  };
  const run_figures sure = certain(false);
  CHECK(sure.preemptions == 0);
  CHECK(sure.most_running == 2);
  // A stop token id may end it early: the reserve's fraction again.
  const run_figures stoppable = certain(true);
  CHECK(stoppable.preemptions > 0);

  o.admission_reserve = 0;  // 0 keeps vLLM's policy for every request
  o.admission_reserve_floor = 0;
  scheduler s(o);
  request_params p;
  p.max_tokens = 24;
  p.ignore_eos = true;
  for (request_id id = 1; id <= 8; ++id) REQUIRE(s.add_request(request(id, range(100 + int32_t(id) * 50, 8), p, ids{2})));
  schedule_output out;
  step(s, out);
  CHECK(s.num_running() > 2);
}
