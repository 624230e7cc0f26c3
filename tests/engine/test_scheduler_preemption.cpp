// Scheduler under a tiny cache: preemption of the lowest-priority latest arrival, resumption with the
// generated tokens kept, taking back a request already placed in the step, and priority order.
#include <catch2/catch.hpp>

#include <vector>

#include "engine/core/scheduler.hpp"
#include "tests/engine/scheduler_steps.hpp"

using namespace troupe::engine;
using namespace troupe::engine::testing;

namespace {

ids table(const scheduler& s, request_id id) {
  auto t = s.kv().blocks_of(id);
  return ids(t.begin(), t.end());
}

}  // namespace

TEST_CASE("when blocks run out the latest arrival is preempted and later resumes with its tokens") {
  scheduler s(opts(4, 2, 64));
  REQUIRE(s.add_request(make(1, 3, 5)));
  REQUIRE(s.add_request(make(2, 3, 5)));
  schedule_output out;
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 3}, {2, 3}});
  REQUIRE(table(s, 1) == ids{0, 1});
  REQUIRE(table(s, 2) == ids{2, 3});
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 1}, {2, 1}});

  step(s, out);  // 1 needs a third block: 2 is preempted, its blocks return tail first
  REQUIRE(plan(out) == plan_t{{1, 1}});
  REQUIRE(out.preempted_request_ids == std::vector<request_id>{2});
  REQUIRE(table(s, 1) == ids{0, 1, 3});
  REQUIRE(s.find(2)->status == request_status::preempted);
  REQUIRE(s.find(2)->num_computed_tokens == 0);
  REQUIRE(s.find(2)->output_ids().size() == 2);
  REQUIRE(s.kv().pool().free_list() == ids{2});
  REQUIRE(s.stats().preemptions == 1);

  step(s, out);  // 2 finds its first block cached but cannot get two more
  REQUIRE(plan(out) == plan_t{{1, 1}});
  REQUIRE(s.num_waiting() == 1);
  auto res = step(s, out);  // 1 reaches max_tokens
  REQUIRE(plan(out) == plan_t{{1, 1}});
  REQUIRE(table(s, 1).empty());
  REQUIRE(res[0].finished);
  REQUIRE(res[0].reason == finish_reason::length);

  step(s, out);  // 2 comes back as a new request: prompt and its two outputs, recomputed
  REQUIRE(plan(out) == plan_t{{2, 5}});
  REQUIRE(out.new_requests.size() == 1);
  REQUIRE(out.new_requests[0].token_ids == ids{200, 201, 202, 7, 7});
  REQUIRE(out.new_requests[0].num_computed_tokens == 0);
  REQUIRE(out.finished_request_ids == std::vector<request_id>{1});
  REQUIRE(s.find(2)->output_ids().size() == 3);
  step(s, out);
  res = step(s, out);
  REQUIRE(res[0].finished);
  REQUIRE(res[0].reason == finish_reason::length);
  REQUIRE_FALSE(s.has_unfinished());
  REQUIRE(s.kv().stats().used_blocks == 0);
  REQUIRE(s.kv().pool().num_free_blocks() == 4);
}

TEST_CASE("the victim is the lowest priority, even when it arrived first") {
  scheduler s(opts(4, 2, 64));
  REQUIRE(s.add_request(make(1, 3, 5, /*priority=*/5)));
  REQUIRE(s.add_request(make(2, 3, 5, /*priority=*/0)));
  schedule_output out;
  step(s, out);
  REQUIRE(plan(out) == plan_t{{2, 3}, {1, 3}});  // admitted by priority
  step(s, out);
  step(s, out);
  REQUIRE(plan(out) == plan_t{{2, 1}});
  REQUIRE(out.preempted_request_ids == std::vector<request_id>{1});
}

TEST_CASE("a victim already placed in the step is taken back out, its budget returned") {
  scheduler s(opts(4, 2, 2));
  REQUIRE(s.add_request(make(2, 2, 10, /*priority=*/5)));
  schedule_output out;
  step(s, out);
  REQUIRE(plan(out) == plan_t{{2, 2}});
  REQUIRE(s.add_request(make(1, 7, 1, /*priority=*/0)));
  step(s, out);
  REQUIRE(plan(out) == plan_t{{2, 1}, {1, 1}});
  step(s, out);
  REQUIRE(plan(out) == plan_t{{2, 1}, {1, 1}});
  REQUIRE(s.kv().pool().free_list() == ids{3});

  // 2's decode goes first and takes block 3; 1's prefill then needs a block, and 2 is the victim.
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 1}});
  REQUIRE(out.total_num_scheduled_tokens == 1);
  REQUIRE(out.cached_requests.size() == 1);
  REQUIRE(out.cached_requests[0].id == 1);
  REQUIRE(out.preempted_request_ids == std::vector<request_id>{2});
  REQUIRE(table(s, 1) == ids{2, 3});
  // 2 had computed 4 tokens: its two full blocks stay cached; the block it just took did not.
  REQUIRE(s.kv().pool().free_list() == ids{1, 0});
  REQUIRE(s.kv().pool().num_cached_blocks() == 2 + 1);

  while (s.has_unfinished()) step(s, out);
  REQUIRE(s.kv().stats().used_blocks == 0);
}

TEST_CASE("waiting requests are admitted by priority, then arrival") {
  scheduler s(opts(64, 4, 64, 1));
  REQUIRE(s.add_request(make(1, 3, 1, 1)));
  REQUIRE(s.add_request(make(2, 3, 1, 0)));
  REQUIRE(s.add_request(make(3, 3, 1, 0)));
  REQUIRE(s.add_request(make(4, 3, 1, -1)));
  std::vector<request_id> order;
  schedule_output out;
  while (s.has_unfinished()) {
    step(s, out);
    for (const auto& e : out.scheduled) order.push_back(e.id);
  }
  REQUIRE(order == std::vector<request_id>{4, 2, 3, 1});
}

TEST_CASE("a preempted request waits ahead of later arrivals of its priority") {
  scheduler s(opts(4, 2, 64));
  REQUIRE(s.add_request(make(1, 3, 5)));
  REQUIRE(s.add_request(make(2, 3, 5)));
  schedule_output out;
  step(s, out);
  step(s, out);
  REQUIRE(s.add_request(make(3, 2, 1)));
  step(s, out);
  REQUIRE(out.preempted_request_ids == std::vector<request_id>{2});
  std::vector<request_id> admitted;
  while (s.has_unfinished()) {
    step(s, out);
    for (const auto& n : out.new_requests) admitted.push_back(n.id);
  }
  REQUIRE(admitted == std::vector<request_id>{2, 3});
}
