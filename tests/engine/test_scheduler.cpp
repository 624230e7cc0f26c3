// Scheduler without a model: chunked-prefill token counts per step, decodes first, the sequence cap,
// new requests in full then diffs, stop checks, rejections and aborts, all to exact values.
#include <catch2/catch.hpp>

#include <vector>

#include "engine/core/scheduler.hpp"
#include "tests/engine/scheduler_steps.hpp"

using namespace troupe::engine;
using namespace troupe::engine::testing;

TEST_CASE("a long prompt is prefilled in chunks and never stalls the decodes of others") {
  scheduler s(opts(64, 4, 8));
  REQUIRE(s.add_request(make(1, 20)));
  schedule_output out;
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 8}});
  REQUIRE_FALSE(out.scheduled[0].samples);
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 8}});
  auto res = step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 4}});
  REQUIRE(res.size() == 1);
  REQUIRE(res[0].new_token_ids == ids{7});
  REQUIRE(s.find(1)->num_tokens() == 21);

  REQUIRE(s.add_request(make(2, 10)));
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 1}, {2, 7}});
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 1}, {2, 3}});
  REQUIRE(out.scheduled[1].samples);
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 1}, {2, 1}});
  REQUIRE(out.total_num_scheduled_tokens == 2);
}

TEST_CASE("continuing prefills get what the decodes leave of the budget, in arrival order") {
  scheduler s(opts(64, 4, 6));
  REQUIRE(s.add_request(make(1, 3)));
  schedule_output out;
  step(s, out);  // 1 is now decoding
  REQUIRE(s.add_request(make(2, 9)));
  REQUIRE(s.add_request(make(3, 9)));
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 1}, {2, 5}});
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 1}, {2, 4}, {3, 1}});
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 1}, {2, 1}, {3, 4}});
}

TEST_CASE("the sequence cap keeps requests waiting until others finish") {
  scheduler s(opts(64, 4, 64, 2));
  for (request_id id = 1; id <= 3; ++id) REQUIRE(s.add_request(make(id, 4, 2)));
  schedule_output out;
  step(s, out);
  REQUIRE(plan(out) == plan_t{{1, 4}, {2, 4}});
  REQUIRE(s.num_waiting() == 1);
  auto res = step(s, out);  // second token: both reach max_tokens 2
  REQUIRE(plan(out) == plan_t{{1, 1}, {2, 1}});
  REQUIRE(res.size() == 2);
  REQUIRE(res[0].finished);
  REQUIRE(res[0].reason == finish_reason::length);
  step(s, out);
  REQUIRE(plan(out) == plan_t{{3, 4}});
  REQUIRE(out.finished_request_ids == std::vector<request_id>{1, 2});
}

TEST_CASE("a new request is sent in full once, then only its new blocks (the runner keeps what it sampled)") {
  scheduler s(opts(64, 4, 64));
  REQUIRE(s.add_request(make(1, 6)));
  schedule_output out;
  step(s, out, 40);
  REQUIRE(out.new_requests.size() == 1);
  REQUIRE(out.cached_requests.empty());
  REQUIRE(out.new_requests[0].token_ids == range(150, 6));
  REQUIRE(out.new_requests[0].block_ids == ids{0, 1});
  REQUIRE(out.new_requests[0].num_computed_tokens == 0);
  step(s, out, 41);  // computes token 40 at position 6
  REQUIRE(out.new_requests.empty());
  REQUIRE(out.cached_requests.size() == 1);
  REQUIRE(out.cached_requests[0].new_block_ids.empty());
  REQUIRE(out.cached_requests[0].num_computed_tokens == 6);
  step(s, out, 42);  // position 7: still block 1
  REQUIRE(out.cached_requests[0].new_block_ids.empty());
  step(s, out, 43);  // position 8 opens block 2
  REQUIRE(out.cached_requests[0].new_block_ids == ids{2});
  REQUIRE(ids(s.find(1)->output_ids().begin(), s.find(1)->output_ids().end()) == ids{40, 41, 42, 43});
}

TEST_CASE("stops: EOS unless ignored, stop token ids, max_tokens, and the model length") {
  schedule_output out;
  {
    scheduler s(opts(64, 4, 64));
    REQUIRE(s.add_request(make(1, 4)));
    auto res = step(s, out, 2);  // EOS
    REQUIRE(res.size() == 1);
    REQUIRE(res[0].finished);
    REQUIRE(res[0].reason == finish_reason::stop);
    REQUIRE(res[0].stop_reason == "2");
    REQUIRE(res[0].new_token_ids.empty());
    REQUIRE_FALSE(s.has_unfinished());
    REQUIRE(s.kv().stats().used_blocks == 0);
  }
  {
    scheduler s(opts(64, 4, 64));
    request r = make(1, 4, 3);
    request_params p = r.params();
    p.ignore_eos = true;
    p.stop_token_ids = {9};
    REQUIRE(s.add_request(request(1, range(0, 4), p, ids{2})));
    auto res = step(s, out, 2);
    REQUIRE_FALSE(res[0].finished);
    REQUIRE(res[0].new_token_ids == ids{2});
    res = step(s, out, 9);
    REQUIRE(res[0].finished);
    REQUIRE(res[0].reason == finish_reason::stop);
    REQUIRE(res[0].stop_reason == "9");
  }
  {
    scheduler_options o = opts(64, 4, 64);
    o.max_model_len = 6;
    scheduler s(o);
    REQUIRE(s.add_request(make(1, 4, 100)));
    REQUIRE_FALSE(step(s, out)[0].finished);
    auto res = step(s, out);
    REQUIRE(res[0].finished);
    REQUIRE(res[0].reason == finish_reason::length);
    REQUIRE(res[0].new_token_ids == ids{7});
  }
}

TEST_CASE("rejections at add_request say why") {
  scheduler_options o = opts(4, 4, 64);
  o.max_model_len = 12;
  scheduler s(o);
  auto too_long = s.add_request(make(1, 12));
  REQUIRE_FALSE(too_long);
  REQUIRE(too_long.error().message == "the prompt has 12 tokens but max_model_len is 12, leaving no room to generate");
  o.max_model_len = 100;
  scheduler small(o);
  auto no_room = small.add_request(make(1, 17));
  REQUIRE_FALSE(no_room);
  REQUIRE(no_room.error().message == "the prompt has 17 tokens but the whole KV cache holds only 16 (4 blocks of 4)");
  REQUIRE(small.add_request(make(1, 16)));  // fits exactly: one token can still be generated
  REQUIRE(small.add_request(make(1, 3)).error().message == "request id 1 is already in use");
  REQUIRE(small.add_request(request(2, {}, {})).error().message ==
          "the prompt is empty (no tokens to continue from)");
  REQUIRE(small.add_request(make(3, 3, 0)).error().message == "max_tokens must be at least 1, got 0");
  REQUIRE(small.num_waiting() == 1);
  REQUIRE(small.max_len() == 17);
  schedule_output out;
  auto res = step(small, out);
  REQUIRE(res[0].finished);
  REQUIRE(res[0].reason == finish_reason::length);
  REQUIRE(small.kv().stats().used_blocks == 0);
}

TEST_CASE("abort frees every block at once, waiting or running") {
  scheduler s(opts(16, 4, 64));
  REQUIRE(s.add_request(make(1, 10)));
  REQUIRE(s.add_request(make(2, 10)));
  schedule_output out;
  step(s, out);
  REQUIRE(s.kv().stats().used_blocks == 6);
  REQUIRE(s.add_request(make(3, 10)));
  REQUIRE(s.abort_request(1));
  REQUIRE(s.kv().stats().used_blocks == 3);
  REQUIRE(s.abort_request(3));  // still waiting
  REQUIRE_FALSE(s.abort_request(3));
  REQUIRE(s.abort_request(2));
  REQUIRE(s.kv().stats().used_blocks == 0);
  REQUIRE(s.kv().pool().num_free_blocks() == 16);
  REQUIRE_FALSE(s.has_unfinished());
  out = s.schedule();
  REQUIRE(out.empty());
  REQUIRE(out.finished_request_ids == std::vector<request_id>{1, 3, 2});
}

TEST_CASE("an abort while a step runs drops that step's result for the request") {
  scheduler s(opts(16, 4, 64));
  REQUIRE(s.add_request(make(1, 5)));
  REQUIRE(s.add_request(make(2, 5)));
  auto out = s.schedule();
  REQUIRE(s.abort_request(1));
  auto res = s.update_from_output(out, std::vector<int32_t>{7, 8});
  REQUIRE(res.size() == 1);
  REQUIRE(res[0].id == 2);
  REQUIRE(res[0].new_token_ids == ids{8});
}
