// Scheduler with steps in flight (asynchronous scheduling), without a model: the next step is planned
// before the last one's tokens are known, placeholders never exceed what a request may produce, a
// request that stops while a later step is in flight gets nothing more and frees its blocks, aborts
// and preemption in flight, and prefix caching of confirmed tokens only; all to exact values.
#include <catch2/catch.hpp>

#include <vector>

#include "engine/core/scheduler.hpp"
#include "tests/engine/scheduler_steps.hpp"

using namespace troupe::engine;
using namespace troupe::engine::testing;

namespace {

// `token` for every entry of the step that samples, -1 for the others.
std::vector<int32_t> samples(const schedule_output& out, int32_t token) {
  std::vector<int32_t> v(out.scheduled.size(), -1);
  for (size_t i = 0; i < v.size(); ++i)
    if (out.scheduled[i].samples) v[i] = token;
  return v;
}

ids outputs(const scheduler& s, request_id id) {
  auto o = s.find(id)->output_ids();
  return ids(o.begin(), o.end());
}

}  // namespace

TEST_CASE("in flight: the next decode is planned before the last token is known") {
  scheduler s(opts(64, 4, 64));
  REQUIRE(s.add_request(make(1, 6)));
  auto out1 = s.schedule();
  REQUIRE(plan(out1) == plan_t{{1, 6}});
  REQUIRE(out1.scheduled[0].samples);
  REQUIRE(s.find(1)->num_computed_tokens == 6);
  REQUIRE(s.find(1)->num_output_placeholders == 1);
  auto out2 = s.schedule();  // computes the placeholder at position 6
  REQUIRE(plan(out2) == plan_t{{1, 1}});
  REQUIRE(out2.scheduled[0].samples);
  REQUIRE(out2.cached_requests.size() == 1);
  REQUIRE(out2.cached_requests[0].num_computed_tokens == 6);
  REQUIRE(s.num_steps_in_flight() == 2);
  REQUIRE(s.kv().stats().cached_blocks == 1);  // positions 4-7 hold a placeholder: not cached

  auto res = s.update_from_output(out1, samples(out1, 40));
  REQUIRE(res.size() == 1);
  REQUIRE(res[0].new_token_ids == ids{40});
  REQUIRE(s.find(1)->num_output_placeholders == 1);
  auto out3 = s.schedule();
  REQUIRE(plan(out3) == plan_t{{1, 1}});
  REQUIRE(out3.cached_requests[0].num_computed_tokens == 7);
  REQUIRE(out3.cached_requests[0].new_block_ids.empty());
  REQUIRE(s.kv().stats().cached_blocks == 1);  // position 7 is still a placeholder
  s.update_from_output(out2, samples(out2, 41));
  s.update_from_output(out3, samples(out3, 42));
  REQUIRE(outputs(s, 1) == ids{40, 41, 42});
  REQUIRE(s.find(1)->num_output_placeholders == 0);
  REQUIRE(s.num_steps_in_flight() == 0);
  auto out4 = s.schedule();
  REQUIRE(plan(out4) == plan_t{{1, 1}});
  REQUIRE(out4.cached_requests[0].new_block_ids == ids{2});
  REQUIRE(s.kv().stats().cached_blocks == 2);  // 154, 155, 40, 41: confirmed, so cached now
}

TEST_CASE("in flight: a request stopping at step N gets nothing from step N+1 and frees its blocks") {
  SECTION("EOS") {
    scheduler s(opts(64, 4, 64));
    REQUIRE(s.add_request(make(1, 4)));
    auto out1 = s.schedule();
    auto out2 = s.schedule();
    REQUIRE(plan(out2) == plan_t{{1, 1}});
    auto res = s.update_from_output(out1, samples(out1, 2));
    REQUIRE(res.size() == 1);
    REQUIRE(res[0].finished);
    REQUIRE(res[0].reason == finish_reason::stop);
    REQUIRE(res[0].new_token_ids.empty());
    REQUIRE(s.kv().stats().used_blocks == 0);
    REQUIRE(s.kv().pool().num_free_blocks() == 64);
    REQUIRE(s.update_from_output(out2, samples(out2, 9)).empty());
    REQUIRE_FALSE(s.has_unfinished());
    REQUIRE(s.num_steps_in_flight() == 0);
    auto out3 = s.schedule();
    REQUIRE(out3.empty());
    REQUIRE(out3.finished_request_ids == std::vector<request_id>{1});
  }
  SECTION("a stop token id") {
    scheduler s(opts(64, 4, 64));
    request_params p;
    p.max_tokens = 10;
    p.stop_token_ids = {9};
    REQUIRE(s.add_request(request(1, range(20, 5), p, ids{2})));
    auto out1 = s.schedule();
    auto out2 = s.schedule();
    auto out3 = s.schedule();
    REQUIRE(plan(out3) == plan_t{{1, 1}});
    REQUIRE(s.update_from_output(out1, samples(out1, 7))[0].new_token_ids == ids{7});
    auto res = s.update_from_output(out2, samples(out2, 9));
    REQUIRE(res[0].finished);
    REQUIRE(res[0].stop_reason == "9");
    REQUIRE(s.kv().stats().used_blocks == 0);
    REQUIRE(s.update_from_output(out3, samples(out3, 8)).empty());
  }
  SECTION("max_tokens: no step samples beyond it") {
    scheduler s(opts(64, 4, 64));
    REQUIRE(s.add_request(make(1, 4, 2)));
    auto out1 = s.schedule();
    auto out2 = s.schedule();
    REQUIRE(plan(out2) == plan_t{{1, 1}});
    auto out3 = s.schedule();  // two placeholders already: all that max_tokens allows
    REQUIRE(out3.empty());
    REQUIRE(s.num_steps_in_flight() == 2);
    REQUIRE_FALSE(s.update_from_output(out1, samples(out1, 7))[0].finished);
    auto res = s.update_from_output(out2, samples(out2, 8));
    REQUIRE(res[0].finished);
    REQUIRE(res[0].reason == finish_reason::length);
    REQUIRE(res[0].new_token_ids == ids{8});
    REQUIRE(s.kv().stats().used_blocks == 0);
  }
  SECTION("the model length") {
    scheduler_options o = opts(64, 4, 64);
    o.max_model_len = 6;
    scheduler s(o);
    REQUIRE(s.add_request(make(1, 4, 100)));
    auto out1 = s.schedule();
    auto out2 = s.schedule();
    REQUIRE(s.schedule().empty());
    s.update_from_output(out1, samples(out1, 7));
    auto res = s.update_from_output(out2, samples(out2, 8));
    REQUIRE(res[0].finished);
    REQUIRE(res[0].reason == finish_reason::length);
    REQUIRE(s.kv().stats().used_blocks == 0);
  }
}

TEST_CASE("in flight: an abort frees the blocks at once and drops the request's later results") {
  scheduler s(opts(16, 4, 64));
  REQUIRE(s.add_request(make(1, 5)));
  REQUIRE(s.add_request(make(2, 5)));
  auto out1 = s.schedule();
  auto out2 = s.schedule();
  REQUIRE(plan(out2) == plan_t{{1, 1}, {2, 1}});
  REQUIRE(s.kv().stats().used_blocks == 4);
  REQUIRE(s.abort_request(1));
  REQUIRE(s.kv().stats().used_blocks == 2);
  auto res = s.update_from_output(out1, std::vector<int32_t>{7, 8});
  REQUIRE(res.size() == 1);
  REQUIRE(res[0].id == 2);
  res = s.update_from_output(out2, std::vector<int32_t>{9, 10});
  REQUIRE(res.size() == 1);
  REQUIRE(outputs(s, 2) == ids{8, 10});
  auto out3 = s.schedule();
  REQUIRE(plan(out3) == plan_t{{2, 1}});
  REQUIRE(out3.finished_request_ids == std::vector<request_id>{1});
}

TEST_CASE("in flight: a preempted request keeps its steps' tokens and comes back with them once known") {
  scheduler s(opts(4, 2, 64));
  REQUIRE(s.add_request(make(1, 3, 5)));
  REQUIRE(s.add_request(make(2, 3, 5)));
  auto out1 = s.schedule();
  REQUIRE(plan(out1) == plan_t{{1, 3}, {2, 3}});
  auto out2 = s.schedule();
  REQUIRE(plan(out2) == plan_t{{1, 1}, {2, 1}});
  s.update_from_output(out1, samples(out1, 7));
  auto out3 = s.schedule();  // 1 needs a third block: 2 is preempted with out2 in flight
  REQUIRE(plan(out3) == plan_t{{1, 1}});
  REQUIRE(out3.preempted_request_ids == std::vector<request_id>{2});
  REQUIRE(s.find(2)->status == request_status::preempted);
  REQUIRE(s.find(2)->num_output_placeholders == 1);
  REQUIRE(s.abort_request(1));  // every block is free now, yet 2 waits for out2's token
  auto out4 = s.schedule();
  REQUIRE(out4.empty());
  REQUIRE(out4.finished_request_ids == std::vector<request_id>{1});
  auto res = s.update_from_output(out2, samples(out2, 8));
  REQUIRE(res.size() == 1);
  REQUIRE(res[0].id == 2);
  REQUIRE(res[0].new_token_ids == ids{8});
  REQUIRE(s.update_from_output(out3, samples(out3, 9)).empty());
  REQUIRE(s.num_steps_in_flight() == 0);
  auto out5 = s.schedule();  // 2 comes back with both of its tokens
  REQUIRE(out5.new_requests.size() == 1);
  REQUIRE(out5.new_requests[0].token_ids == ids{200, 201, 202, 7, 8});
  REQUIRE(plan(out5) == plan_t{{2, 3}});  // its first block (200, 201) is a prefix-cache hit
  REQUIRE(out5.new_requests[0].num_computed_tokens == 2);
}

TEST_CASE("in flight: a failed step ends its requests and those that hit its blocks, and empties the prefix cache") {
  scheduler s(opts(32, 4, 64));
  request_params p;
  REQUIRE(s.add_request(request(1, range(10, 8), p, ids{2})));
  auto out1 = s.schedule();
  REQUIRE(s.kv().stats().cached_blocks == 2);
  ids longer = range(10, 8);
  longer.push_back(50);
  REQUIRE(s.add_request(request(2, longer, p, ids{2})));          // shares 1's blocks (not yet written)
  REQUIRE(s.add_request(request(3, range(300, 5), p, ids{2})));   // shares nothing
  auto out2 = s.schedule();
  REQUIRE(plan(out2) == plan_t{{1, 1}, {2, 1}, {3, 5}});
  REQUIRE(out2.new_requests[0].num_computed_tokens == 8);

  auto failed = s.fail_step(out1, "the model rejected the step");
  REQUIRE(failed.size() == 2);
  REQUIRE(failed[0].id == 1);
  REQUIRE(failed[1].id == 2);
  REQUIRE(failed[1].reason == finish_reason::error);
  REQUIRE(failed[1].stop_reason == "the model rejected the step");
  REQUIRE(s.kv().stats().cached_blocks == 0);
  REQUIRE(s.kv().blocks_of(1).empty());
  REQUIRE(s.kv().blocks_of(2).empty());
  auto res = s.update_from_output(out2, samples(out2, 7));
  REQUIRE(res.size() == 1);
  REQUIRE(res[0].id == 3);  // the others go on
  REQUIRE(s.add_request(request(4, longer, p, ids{2})));
  auto out3 = s.schedule();
  REQUIRE(plan(out3) == plan_t{{3, 1}, {4, 9}});  // no hit on blocks that were never written
}
