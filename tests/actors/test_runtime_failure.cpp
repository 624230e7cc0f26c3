// Supervision: an executor whose backend fails mid-run is restarted and its requests recomputed
// (greedy outputs unchanged); one that keeps failing ends every request with an error; nothing hangs.
#include "runtime_helpers.hpp"

#include <mutex>
#include <random>
#include <thread>

using namespace troupe;
using namespace troupe::test;

namespace {

std::vector<std::shared_ptr<request_stream>> submit_all(runtime& rt, int64_t max_tokens) {
  std::vector<std::shared_ptr<request_stream>> out;
  for (const auto& p : story_prompts()) {
    auto s = rt.submit(greedy(p, max_tokens));
    if (!s) FAIL(s.error().message);
    out.push_back(*s);
  }
  return out;
}

}  // namespace

TEST_CASE("a failed executor is restarted and its requests recomputed with the same greedy output", "[actors]") {
  const auto base = options_for(small_engine());
  std::vector<std::vector<collected_sample>> want;
  {
    auto rt = start(base);
    for (auto& s : submit_all(*rt, 30)) want.push_back(collect(*s, 1));
  }
  auto plan = std::make_shared<failure_plan>();
  plan->failing_instances = 2;  // the first executor and its first replacement fail
  plan->fail_after_steps = 6;
  auto rt = start(with_plan(base, plan));
  auto streams = submit_all(*rt, 30);
  for (size_t i = 0; i < streams.size(); ++i) {
    const auto got = collect(*streams[i], 1);
    INFO("prompt " << i);
    CHECK(got[0].ids == want[i][0].ids);
    CHECK(got[0].text == want[i][0].text);
    CHECK(got[0].finish_reason == want[i][0].finish_reason);
  }
  CHECK(plan->instances.load() == 3);
  CHECK(rt->ready());
  // The restarted executor serves new requests too.
  auto again = rt->submit(greedy(story_prompts()[0], 30));
  REQUIRE(again.has_value());
  CHECK(collect(**again, 1)[0].ids == want[0][0].ids);
  const auto m = rt->metrics();
  CHECK(m.kv_blocks_used == 0);
  CHECK(m.requests_running == 0);
}

TEST_CASE("an executor that keeps failing ends every request with an error and the runtime stops admitting", "[actors]") {
  auto plan = std::make_shared<failure_plan>();
  plan->failing_instances = 100;
  plan->fail_after_steps = 2;
  auto rt = start(with_plan(options_for(small_engine()), plan));
  auto streams = submit_all(*rt, 30);
  for (auto& s : streams) {
    const auto got = collect(*s, 1, std::chrono::seconds(30));
    CHECK(got[0].finish_reason == "error");
    INFO(got[0].stop_reason);
    CHECK(got[0].stop_reason.find("executor failed") != std::string::npos);
    CHECK(got[0].stop_reason.find("injected device failure") != std::string::npos);
  }
  CHECK_FALSE(rt->ready());
  auto late = rt->submit(greedy("Once upon a time", 4));
  REQUIRE_FALSE(late.has_value());
  CHECK(late.error().code == errc::unavailable);
  const auto m = rt->metrics();
  CHECK(m.requests_finished.at("error") == story_prompts().size());
  CHECK(m.kv_blocks_used == 0);
}

TEST_CASE("drain returns when a failing executor ends every request", "[actors]") {
  auto plan = std::make_shared<failure_plan>();
  plan->failing_instances = 100;
  plan->fail_after_steps = 3;
  auto rt = start(with_plan(options_for(small_engine()), plan));
  auto streams = submit_all(*rt, 200);
  const auto t0 = std::chrono::steady_clock::now();
  rt->drain(std::chrono::seconds(60));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20));
  for (auto& s : streams) CHECK(collect(*s, 1)[0].finish_reason == "error");
}

TEST_CASE("an executor that cannot load the model makes start fail with the reason", "[actors]") {
  auto o = options_for(small_engine());
  o.backend_factory = []() -> std::unique_ptr<kernels::backend> { return nullptr; };
  auto rt = runtime::start(o);
  REQUIRE_FALSE(rt.has_value());
  CHECK(rt.error().message.find("backend factory returned no backend") != std::string::npos);
  auto missing = options_for(small_engine());
  missing.model_dir = "/nonexistent/model";
  auto rt2 = runtime::start(missing);
  REQUIRE_FALSE(rt2.has_value());
  CHECK(rt2.error().message.find("/nonexistent/model") != std::string::npos);
}

TEST_CASE("cancellations, n samples and stops from many threads across executor failures: every stream ends, greedy outputs hold, no block leaks", "[actors]") {
  const auto base = options_for(small_engine());
  std::vector<collected_sample> alone;
  {
    auto rt = start(base);
    for (const auto& p : story_prompts()) {
      auto s = rt->submit(greedy(p, 24));
      REQUIRE(s.has_value());
      alone.push_back(collect(**s, 1)[0]);
    }
  }
  auto plan = std::make_shared<failure_plan>();
  plan->failing_instances = 2;
  plan->fail_after_steps = 20;
  auto o = with_plan(base, plan);
  o.max_waiting = 1000;
  auto rt = start(o);
  std::mutex mu;
  std::vector<std::string> problems;
  std::atomic<uint64_t> samples{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < 6; ++t)
    pool.emplace_back([&, t] {
      std::mt19937 rng{static_cast<uint32_t>(t)};
      for (int i = 0; i < 10; ++i) {
        const size_t p = rng() % story_prompts().size();
        const int kind = int(rng() % 4);
        submit_request r = greedy(story_prompts()[p], 24);
        if (kind == 2) {
          r.params.n = 2;
          r.params.sampling.temperature = 0.8f;
          r.params.sampling.seed = uint64_t(t * 100 + i);
        } else if (kind == 3) {
          r.params.stop = {"."};
        }
        auto s = rt->submit(r);
        if (!s) {
          std::lock_guard lock(mu);
          problems.push_back("submit: " + s.error().message);
          continue;
        }
        samples += uint64_t(r.params.n);
        std::vector<int32_t> ids;
        std::string text;
        std::vector<std::string> reasons(size_t(r.params.n));
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (!(*s)->done() && std::chrono::steady_clock::now() < deadline) {
          auto ev = (*s)->next(std::chrono::milliseconds(20));
          if (!ev) continue;
          if (ev->sample == 0) {
            ids.insert(ids.end(), ev->token_ids.begin(), ev->token_ids.end());
            text += ev->text;
          }
          if (ev->finished) reasons[size_t(ev->sample)] = ev->finish_reason;
          if (kind == 1 && ids.size() >= 3) (*s)->cancel();
        }
        std::lock_guard lock(mu);
        if (!(*s)->done()) problems.push_back("a stream did not end");
        for (const auto& why : reasons)
          if (why.empty() || why == "error") problems.push_back("a sample ended with '" + why + "'");
        if (kind == 0 && (ids != alone[p].ids || text != alone[p].text))
          problems.push_back("greedy output changed for prompt " + std::to_string(p));
        if (kind == 3 && text.find('.') != std::string::npos) problems.push_back("text past a stop string");
      }
    });
  for (auto& th : pool) th.join();
  for (const auto& pr : problems) FAIL_CHECK(pr);
  CHECK(plan->instances.load() == 3);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  runtime_metrics m;
  do {
    m = rt->metrics();
  } while ((m.requests_running != 0 || m.kv_blocks_used != 0) && std::chrono::steady_clock::now() < deadline);
  CHECK(m.requests_running == 0);
  CHECK(m.requests_waiting == 0);
  CHECK(m.kv_blocks_used == 0);
  uint64_t finished = 0;
  for (const auto& [reason, n] : m.requests_finished) finished += n;
  CHECK(finished == samples.load());
}
