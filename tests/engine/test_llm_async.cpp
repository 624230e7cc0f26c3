// Steps in flight on the bundled model: engine::llm with 2 and 3 steps in flight gives the outputs of
// one step at a time, token for token (greedy, seeded, n samples, penalties, stop strings and ids,
// logprobs, prompt logprobs, chunked prefill, preemption under a small cache); the model runner
// supplies a placeholder's input token itself; rejected steps and device errors with steps in flight.
#include <catch2/catch.hpp>

#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/core/llm.hpp"
#include "engine/core/model_runner.hpp"
#include "engine/core/scheduler.hpp"
#include "tests/engine/bundled_model.hpp"
#include "tests/engine/failing_backend.hpp"

using namespace troupe;
using namespace troupe::engine;
using ids = std::vector<int32_t>;
using testing::the;

namespace {

const std::vector<std::string>& prompts = testing::story_prompts();

// A mix of every kind of request the engine serves.
std::vector<llm_request> workload() {
  const int32_t period = the().tok->encode("Tom had a big red ball.")->back();
  std::vector<llm_request> reqs;
  for (size_t i = 0; i < 3 * prompts.size(); ++i) {
    llm_request r;
    r.prompt = prompts[i % prompts.size()];
    request_params& p = r.params;
    p.max_tokens = 20 + int64_t(i * 7 % 50);
    switch (i % 6) {
      case 0: p.sampling.temperature = 0.0f; break;
      case 1: p.sampling.temperature = 0.9f; p.sampling.top_p = 0.9f; p.sampling.seed = 100 + i; break;
      case 2: p.sampling.temperature = 1.0f; p.sampling.seed = 7; p.n = 3; break;
      case 3:
        p.sampling.temperature = 0.7f;
        p.sampling.seed = 11;
        p.sampling.repetition_penalty = 1.3f;
        p.sampling.frequency_penalty = 0.5f;
        p.logprobs = 2;
        break;
      case 4: p.sampling.temperature = 0.0f; p.stop = {" the", "."}; p.prompt_logprobs = 1; break;
      case 5: p.sampling.temperature = 0.0f; p.stop_token_ids = {period}; p.ignore_eos = true; break;
    }
    reqs.push_back(std::move(r));
  }
  return reqs;
}

std::vector<llm_output> run(int32_t in_flight, const std::vector<llm_request>& reqs, uint64_t* preemptions) {
  llm_options o;
  o.block_size = 8;
  o.kv_cache_blocks = 40;        // 320 tokens for 18 requests (26 samples): preemption
  o.admission_reserve = 0;
  o.max_num_batched_tokens = 24; // chunked prefill
  o.max_num_seqs = 12;
  o.steps_in_flight = in_flight;
  auto e = llm::create(*the().model, *the().tok, o);
  REQUIRE(e.has_value());
  auto outs = (*e)->generate(reqs);
  *preemptions = (*e)->engine_scheduler().stats().preemptions;
  const auto& kv = (*e)->engine_scheduler().kv();
  REQUIRE(kv.stats().used_blocks == 0);
  REQUIRE(kv.pool().num_free_blocks() == kv.num_blocks());
  return outs;
}

void require_same_logprobs(const std::vector<logprobs_entry>& a, const std::vector<logprobs_entry>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t k = 0; k < a.size(); ++k) {
    REQUIRE(a[k].chosen.token == b[k].chosen.token);
    REQUIRE(a[k].chosen.logprob == b[k].chosen.logprob);
    REQUIRE(a[k].rank == b[k].rank);
    REQUIRE(a[k].top.size() == b[k].top.size());
  }
}

}  // namespace

TEST_CASE("engine::llm with 2 and 3 steps in flight gives the outputs of one step at a time") {
  const auto reqs = workload();
  uint64_t preempted = 0;
  const auto want = run(1, reqs, &preempted);
  REQUIRE(preempted > 0);
  for (int32_t k : {2, 3}) {
    INFO(k << " steps in flight");
    uint64_t p = 0;
    const auto got = run(k, reqs, &p);
    REQUIRE(p > 0);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      INFO("request " << i);
      REQUIRE(got[i].error == want[i].error);
      require_same_logprobs(got[i].prompt_logprobs, want[i].prompt_logprobs);
      REQUIRE(got[i].samples.size() == want[i].samples.size());
      for (size_t s = 0; s < want[i].samples.size(); ++s) {
        INFO("sample " << s);
        REQUIRE(got[i].samples[s].output_ids == want[i].samples[s].output_ids);
        REQUIRE(got[i].samples[s].text == want[i].samples[s].text);
        REQUIRE(got[i].samples[s].finish_reason == want[i].samples[s].finish_reason);
        REQUIRE(got[i].samples[s].stop_reason == want[i].samples[s].stop_reason);
        require_same_logprobs(got[i].samples[s].logprobs, want[i].samples[s].logprobs);
      }
    }
  }
  // The workload exercises every way of ending.
  std::set<std::string> reasons;
  for (const auto& o : want)
    for (const auto& s : o.samples) reasons.insert(s.finish_reason);
  REQUIRE(reasons.count("stop") == 1);
  REQUIRE(reasons.count("length") == 1);
}

// Eight blocks of four tokens: room for the short requests of the runner tests below.
scheduler_options tiny_cache() {
  scheduler_options o;
  o.num_blocks = 8;
  o.block_size = 4;
  o.max_model_len = 512;
  o.admission_reserve = 0;
  return o;
}

TEST_CASE("the model runner feeds a placeholder the token it sampled in the step before") {
  scheduler s(tiny_cache());
  model_runner runner(*the().model, 8, 4);
  request_params p;
  p.sampling.temperature = 0.0f;
  REQUIRE(s.add_request(request(1, ids{1, 10, 11, 12, 13, 14}, p)));
  auto out1 = s.schedule();
  auto out2 = s.schedule();  // planned before out1 ran: position 6 is a placeholder
  REQUIRE(out2.scheduled.size() == 1);
  REQUIRE(out2.scheduled[0].num_tokens == 1);
  auto res1 = runner.execute(out1);
  REQUIRE(res1.has_value());
  auto res2 = runner.execute(out2);
  REQUIRE(res2.has_value());
  REQUIRE(runner.last_input().token_ids == ids{res1->sampled[0]});
  REQUIRE(runner.last_input().positions == ids{6});
  REQUIRE(s.update_from_output(out1, res1->sampled)[0].new_token_ids == ids{res1->sampled[0]});
  REQUIRE(s.update_from_output(out2, res2->sampled)[0].new_token_ids == ids{res2->sampled[0]});
}

TEST_CASE("a step launched before the one before it finishes takes that step's tokens where they are") {
  // Four requests, greedy and sampled, through steps planned two ahead: each run once step by step
  // (execute) and once with step N + 1 launched before step N finishes.
  const auto run = [](bool overlap) {
    scheduler s(tiny_cache());
    model_runner runner(*the().model, 8, 4);
    for (request_id id = 1; id <= 3; ++id) {
      request_params p;
      p.max_tokens = 5;
      p.ignore_eos = true;
      p.sampling.temperature = id == 2 ? 0.8f : 0.0f;
      p.sampling.seed = 40 + id;
      REQUIRE(s.add_request(request(id, ids{1, int32_t(10 * id), int32_t(10 * id + 1)}, p)));
    }
    std::vector<std::vector<int32_t>> sampled;
    std::deque<schedule_output> planned;
    std::vector<size_t> overlapped;
    while (s.has_unfinished() || !planned.empty()) {
      while (planned.size() < 2 && s.has_unfinished()) planned.push_back(s.schedule());
      schedule_output& out = planned.front();
      if (!overlap || runner.num_launched() == 0) REQUIRE(runner.launch(out).has_value());
      if (overlap && planned.size() > 1 && runner.may_launch_before_finish(planned[1])) {
        REQUIRE(runner.launch(planned[1]).has_value());
        overlapped.push_back(planned[1].scheduled.size());
      }
      auto res = runner.finish();
      REQUIRE(res.has_value());
      sampled.push_back(res->sampled);
      s.update_from_output(out, res->sampled);
      planned.pop_front();
      REQUIRE(sampled.size() < 100);
    }
    REQUIRE(runner.num_launched() == 0);
    if (overlap) REQUIRE(overlapped.size() > 3);  // most steps started before the one before finished
    return sampled;
  };
  REQUIRE(run(true) == run(false));
}

TEST_CASE("a step whose samplers count generated tokens is not launched before the one before finishes") {
  scheduler s(tiny_cache());
  model_runner runner(*the().model, 8, 4);
  request_params p;
  p.sampling.temperature = 0.0f;
  p.sampling.presence_penalty = 0.5f;  // its recipe needs the tokens generated so far
  REQUIRE(s.add_request(request(1, ids{1, 10, 11}, p)));
  auto out1 = s.schedule();
  auto out2 = s.schedule();
  REQUIRE(runner.launch(out1).has_value());
  REQUIRE_FALSE(runner.may_launch_before_finish(out2));
  REQUIRE(runner.finish().has_value());
  REQUIRE(runner.execute(out2).has_value());
}

TEST_CASE("after a step the model rejected, the runner still runs the next step planned for the same requests") {
  scheduler s(tiny_cache());
  model_runner runner(*the().model, 8, 4);
  request_params p;
  p.sampling.temperature = 0.0f;
  REQUIRE(s.add_request(request(1, ids{1, 10, 11, 600}, p)));  // 600 is outside the vocabulary (512)
  REQUIRE(s.add_request(request(2, ids{1, 20, 21, 22}, p)));
  auto out1 = s.schedule();
  auto out2 = s.schedule();  // planned before out1 failed: placeholders of both
  REQUIRE(out2.scheduled.size() == 2);
  auto res1 = runner.execute(out1);
  REQUIRE_FALSE(res1.has_value());
  auto res2 = runner.execute(out2);  // no sampled tokens to feed: it runs anyway, its results are dropped
  REQUIRE(res2.has_value());
  REQUIRE(s.fail_step(out1, res1.error().message).size() == 2);
  REQUIRE(s.update_from_output(out2, res2->sampled).empty());
  REQUIRE(s.kv().stats().used_blocks == 0);
  auto out3 = s.schedule();
  REQUIRE(out3.finished_request_ids == std::vector<request_id>{1, 2});
  REQUIRE(runner.execute(out3).has_value());
  REQUIRE(runner.num_requests() == 0);
}

TEST_CASE("a device error on the runner's thread comes out of generate, with steps in flight or not") {
  for (int32_t k : {1, 2, 3}) {
    INFO(k << " steps in flight");
    auto plan = std::make_shared<troupe::test::failure_plan>();
    plan->fail_after_steps = 4;
    troupe::test::failing_backend backend(plan);
    auto model = llama_model::load(TROUPE_DEFAULT_MODEL, backend);
    REQUIRE(model.has_value());
    llm_options o;
    o.steps_in_flight = k;
    auto e = llm::create(**model, *the().tok, o);
    REQUIRE(e.has_value());
    std::vector<llm_request> reqs(4);
    for (size_t i = 0; i < reqs.size(); ++i) {
      reqs[i].prompt = prompts[i];
      reqs[i].params.max_tokens = 20;
    }
    REQUIRE_THROWS_WITH((*e)->generate(reqs), "injected device failure");
  }
}
