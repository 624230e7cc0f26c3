// Random workloads through the scheduler and model runner on the bundled model (arrivals, aborts,
// priorities, caches down to the minimum, prefix caching on and off, 1 to 3 steps in flight): every
// request ends or is rejected with a reason, block ownership matches the reference counts at every
// step, nothing leaks, and every output equals that request run alone. Then the "done when" run: 200 mixed requests
// through a cache a tenth of their total need.
#include <catch2/catch.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "engine/core/llm.hpp"
#include "engine/core/model_runner.hpp"
#include "engine/core/scheduler.hpp"
#include "engine/generation/generate.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "tests/engine/bundled_model.hpp"

using namespace troupe;
using namespace troupe::engine;
using ids = std::vector<int32_t>;
using testing::alone;
using testing::the;

namespace {

int32_t uniform(std::mt19937_64& rng, int32_t lo, int32_t hi) {
  return std::uniform_int_distribution<int32_t>(lo, hi)(rng);
}

// Prompts that often share prefixes (so that prefix caching has something to find).
struct prompt_maker {
  std::vector<ids> prefixes;
  explicit prompt_maker(std::mt19937_64& rng) {
    for (int i = 0; i < 3; ++i) {
      ids p{1};
      for (int32_t k = uniform(rng, 0, 40); k > 0; --k) p.push_back(uniform(rng, 3, 511));
      prefixes.push_back(std::move(p));
    }
  }
  ids make(std::mt19937_64& rng, int32_t max_suffix) const {
    ids p = prefixes[size_t(uniform(rng, 0, 2))];
    for (int32_t k = uniform(rng, 1, max_suffix); k > 0; --k) p.push_back(uniform(rng, 3, 511));
    return p;
  }
};

request_params random_params(std::mt19937_64& rng, int32_t max_tokens) {
  request_params p;
  p.max_tokens = uniform(rng, 1, max_tokens);
  p.priority = uniform(rng, 0, 2);
  p.ignore_eos = uniform(rng, 0, 1) == 1;
  if (uniform(rng, 0, 1) == 1) {
    p.sampling.temperature = 0.0f;
  } else {
    p.sampling.temperature = 0.8f;
    p.sampling.top_p = 0.95f;
    p.sampling.seed = uint64_t(uniform(rng, 0, 1 << 20));
  }
  return p;
}

struct planned {
  ids prompt;
  request_params params;
  int32_t arrive = 0;
  int32_t abort_at = -1;  // step at which it is aborted, -1: never
};

// Every block's ref_cnt equals the number of live tables holding it; the rest are free.
void check_ownership(const scheduler& s, const std::set<request_id>& live) {
  const block_pool& pool = s.kv().pool();
  std::vector<int32_t> holders(size_t(pool.num_blocks()), 0);
  for (request_id id : live) {
    auto t = s.kv().blocks_of(id);
    std::set<int32_t> distinct(t.begin(), t.end());
    REQUIRE(distinct.size() == t.size());
    for (int32_t b : t) ++holders[size_t(b)];
  }
  int32_t free_blocks = 0;
  for (int32_t b = 0; b < pool.num_blocks(); ++b) {
    REQUIRE(pool.block(b).ref_cnt == holders[size_t(b)]);
    free_blocks += holders[size_t(b)] == 0 ? 1 : 0;
  }
  REQUIRE(free_blocks == pool.num_free_blocks());
  REQUIRE(int32_t(pool.free_list().size()) == free_blocks);
  REQUIRE(s.kv().stats().used_blocks <= s.kv().stats().total_blocks);
}

// Returns the number of preemptions.
uint64_t run_workload(uint64_t seed, bool caching, bool minimum_cache, size_t in_flight) {
  std::mt19937_64 rng(seed);
  const int32_t block_size = std::array<int32_t, 3>{4, 8, 16}[size_t(uniform(rng, 0, 2))];
  prompt_maker prompts(rng);
  std::vector<planned> plan(size_t(uniform(rng, 10, 24)));
  int32_t min_blocks = 1;
  for (auto& p : plan) {
    p.prompt = prompts.make(rng, 40);
    p.params = random_params(rng, 40);
    p.arrive = uniform(rng, 0, 30);
    if (uniform(rng, 0, 6) == 0) p.abort_at = p.arrive + uniform(rng, 0, 20);
    const int64_t tokens = int64_t(p.prompt.size()) + p.params.max_tokens - 1;
    min_blocks = std::max(min_blocks, int32_t((tokens + block_size - 1) / block_size));
  }
  scheduler_options o;
  o.num_blocks = minimum_cache ? min_blocks : min_blocks + uniform(rng, 0, 3 * min_blocks);
  o.admission_reserve = 0;  // admit what fits now, so that small caches preempt
  o.block_size = block_size;
  o.enable_prefix_caching = caching;
  o.max_num_seqs = uniform(rng, 1, 16);
  o.max_num_batched_tokens = uniform(rng, 8, 96);
  o.max_model_len = 512;
  // One prompt larger than the whole cache: it must be rejected with a reason.
  planned huge;
  huge.prompt = ids(size_t(std::min<int64_t>(511, int64_t{o.num_blocks} * block_size + 1)), 7);
  huge.arrive = uniform(rng, 0, 30);
  plan.push_back(huge);
  INFO("seed " << seed << " in flight " << in_flight << " caching " << caching << " blocks " << o.num_blocks << " block_size " << block_size
                << " seqs " << o.max_num_seqs << " budget " << o.max_num_batched_tokens);

  scheduler s(o);
  model_runner runner(*the().model, o.num_blocks, block_size);
  std::map<request_id, ids> outputs;
  std::map<request_id, finish_reason> reasons;
  std::set<request_id> live, rejected;
  // Steps run as soon as they are planned (the runner runs them in order); their results go back to
  // the scheduler once `in_flight` are outstanding, or when nothing more can be planned.
  std::deque<std::pair<schedule_output, step_result>> flights;
  for (int32_t step = 0; step < 5000; ++step) {
    for (size_t i = 0; i < plan.size(); ++i) {
      const auto id = request_id(i);
      if (plan[i].arrive == step) {
        auto ok = s.add_request(request(id, plan[i].prompt, plan[i].params, ids{2}));
        if (ok) {
          live.insert(id);
        } else {
          REQUIRE_FALSE(ok.error().message.empty());
          rejected.insert(id);
        }
      }
      if (plan[i].abort_at == step && live.count(id) != 0) {
        REQUIRE(s.abort_request(id));
        live.erase(id);
        reasons[id] = finish_reason::abort;
      }
    }
    const bool all_arrived = std::all_of(plan.begin(), plan.end(), [&](const planned& p) { return p.arrive < step; });
    if (all_arrived && !s.has_unfinished() && flights.empty()) break;
    schedule_output out = s.schedule();
    REQUIRE(out.total_num_scheduled_tokens <= o.max_num_batched_tokens);
    REQUIRE(s.num_running() <= size_t(o.max_num_seqs));
    if (out.empty()) REQUIRE((!s.has_unfinished() || !flights.empty()));
    auto sampled = runner.execute(out);
    REQUIRE(sampled.has_value());
    const bool planned = !out.empty();
    if (planned) flights.emplace_back(std::move(out), std::move(*sampled));
    REQUIRE(s.num_steps_in_flight() == flights.size());
    const size_t keep = planned ? in_flight - 1 : (flights.empty() ? 0 : flights.size() - 1);
    while (flights.size() > keep) {
      const auto& [done, result] = flights.front();
      for (const auto& r : s.update_from_output(done, result.sampled)) {
        REQUIRE(live.count(r.id) == 1);  // nothing comes back for a request that ended
        auto& got = outputs[r.id];
        got.insert(got.end(), r.new_token_ids.begin(), r.new_token_ids.end());
        if (r.finished) {
          live.erase(r.id);
          reasons[r.id] = r.reason;
        }
      }
      flights.pop_front();
    }
    check_ownership(s, live);
  }
  REQUIRE(flights.empty());
  REQUIRE_FALSE(s.has_unfinished());
  REQUIRE(rejected.count(request_id(plan.size() - 1)) == 1);
  REQUIRE(s.kv().stats().used_blocks == 0);
  REQUIRE(s.kv().pool().num_free_blocks() == o.num_blocks);
  REQUIRE(runner.execute(s.schedule()).has_value());  // delivers the last finished ids
  REQUIRE(runner.num_requests() == 0);

  for (size_t i = 0; i + 1 < plan.size(); ++i) {
    const auto id = request_id(i);
    INFO("request " << i);
    REQUIRE((rejected.count(id) == 1) != (reasons.count(id) == 1));
    if (rejected.count(id) != 0) continue;
    const auto want = alone(plan[i].prompt, plan[i].params);
    const ids& got = outputs[id];
    if (reasons[id] == finish_reason::abort) {
      REQUIRE(got.size() <= want.output_ids.size());
      REQUIRE(std::equal(got.begin(), got.end(), want.output_ids.begin()));
    } else {
      REQUIRE(got == want.output_ids);
      REQUIRE(to_string(reasons[id]) == want.finish_reason);
    }
  }
  return s.stats().preemptions;
}

}  // namespace

TEST_CASE("random workloads: all end, no block leaks or is double-owned, outputs equal runs alone") {
  for (uint64_t seed = 1; seed <= 6; ++seed)
    for (bool caching : {true, false})
      for (bool minimum : {true, false}) run_workload(seed * 7919, caching, minimum, 1);
}

TEST_CASE("random workloads with 2 and 3 steps in flight: the same invariants and outputs") {
  for (size_t in_flight : {2, 3}) {
    uint64_t preemptions = 0;
    for (uint64_t seed = 1; seed <= 6; ++seed)
      for (bool caching : {true, false})
        for (bool minimum : {true, false})
          preemptions += run_workload(seed * 7919 + in_flight, caching, minimum, in_flight);
    REQUIRE(preemptions > 0);  // requests were preempted with steps in flight
  }
}

TEST_CASE("done when: 200 mixed requests through a tenth of their cache need equal one-at-a-time runs") {
  std::mt19937_64 rng(2026);
  prompt_maker prompts(rng);
  std::vector<llm_request> reqs(200);
  const int32_t block_size = 16;
  int64_t need = 0, largest = 0;
  for (auto& r : reqs) {
    r.prompt_ids = prompts.make(rng, 100);
    r.params = random_params(rng, 120);
    r.params.priority = 0;
    const int64_t blocks = (int64_t(r.prompt_ids.size()) + r.params.max_tokens + block_size - 1) / block_size;
    need += blocks;
    largest = std::max(largest, blocks);
  }
  llm_options o;
  o.kv_cache_blocks = need / 10;
  o.admission_reserve = 0;
  o.block_size = block_size;
  o.max_num_seqs = 64;
  o.max_num_batched_tokens = 256;
  REQUIRE(o.kv_cache_blocks >= largest);
  auto e = llm::create(*the().model, *the().tok, o);
  REQUIRE(e.has_value());
  auto outs = (*e)->generate(reqs);
  for (size_t i = 0; i < reqs.size(); ++i) {
    INFO("request " << i);
    REQUIRE(outs[i].error.empty());
    const auto want = alone(reqs[i].prompt_ids, reqs[i].params);
    REQUIRE(outs[i].samples[0].output_ids == want.output_ids);
    REQUIRE(outs[i].samples[0].text == want.text);
    REQUIRE(outs[i].samples[0].finish_reason == want.finish_reason);
  }
  const auto& sched = (*e)->engine_scheduler();
  REQUIRE(sched.stats().preemptions > 0);
  REQUIRE(sched.kv().stats().prefix_hits > 0);
  REQUIRE(sched.kv().stats().used_blocks == 0);
  REQUIRE(sched.kv().pool().num_free_blocks() == sched.kv().num_blocks());
  WARN("200 requests, " << o.kv_cache_blocks << " blocks for a need of " << need << ": " << (*e)->steps()
                        << " steps, " << sched.stats().preemptions << " preemptions, prefix hits "
                        << sched.kv().stats().prefix_hits << " of " << sched.kv().stats().prefix_queries
                        << " tokens");
}
