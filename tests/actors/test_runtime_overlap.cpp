// Overlapped steps in the executor actor (step N + 1 launched before step N finishes), on a CPU
// backend whose samples are ready only a while after their step began, as a GPU's: outputs equal
// engine::llm's one step at a time and the runtime's with TROUPE_OVERLAP=0 (greedy, seeded, n
// samples, stops, penalties, preemption, cancellation mid-stream, a device error with a step
// launched), steps with penalties never overlap, and a step with no step behind it is finished
// without waiting for one (and a request alone still overlaps its steps).
#include <cstdlib>
#include <optional>
#include <string>

#include "lagging_backend.hpp"
#include "runtime_helpers.hpp"

using namespace troupe;
using namespace troupe::test;

namespace {

// Sets TROUPE_OVERLAP for its lifetime (an executor reads it when it starts).
class overlap_env {
 public:
  explicit overlap_env(bool on) {
    if (const char* v = std::getenv("TROUPE_OVERLAP")) old_ = v;
    ::setenv("TROUPE_OVERLAP", on ? "1" : "0", 1);
  }
  ~overlap_env() {
    if (old_) ::setenv("TROUPE_OVERLAP", old_->c_str(), 1);
    else ::unsetenv("TROUPE_OVERLAP");
  }
  overlap_env(const overlap_env&) = delete;
  overlap_env& operator=(const overlap_env&) = delete;

 private:
  std::optional<std::string> old_;
};

// A runtime over lagging backends that share `plan`, with overlap on or off (also for executors
// restarted after a failure).
struct lagged_runtime {
  overlap_env env;
  std::shared_ptr<lag_plan> plan = std::make_shared<lag_plan>();
  std::unique_ptr<runtime> rt;

  lagged_runtime(const engine::llm_options& o, int32_t steps_in_flight, bool overlap,
                 std::chrono::microseconds lag = std::chrono::microseconds(2000), int32_t fail_at = 0)
      : env(overlap) {
    plan->lag = lag;
    plan->fail_at = fail_at;
    auto ro = options_for(o);
    ro.steps_in_flight = steps_in_flight;
    ro.backend_factory = [p = plan]() -> std::unique_ptr<kernels::backend> { return std::make_unique<lagging_backend>(p); };
    rt = start(ro);
  }
};

engine::llm_request story(size_t i, int64_t max_tokens) {
  engine::llm_request r;
  r.prompt = story_prompts()[i % story_prompts().size()];
  r.params.max_tokens = max_tokens;
  r.params.sampling.temperature = 0.0f;
  return r;
}

// mixed_requests() with three kinds of penalty among them.
std::vector<engine::llm_request> with_penalties() {
  auto in = mixed_requests();
  in[5].params.sampling.presence_penalty = 0.8f;
  in[9].params.sampling.repetition_penalty = 1.3f;
  in[10].params.sampling.frequency_penalty = 0.5f;
  return in;
}

void require_drained(runtime& rt) {
  const auto m = rt.metrics();
  CHECK(m.kv_blocks_used == 0);
  CHECK(m.requests_running == 0);
}

}  // namespace

TEST_CASE("overlapped steps give the outputs of one step at a time, and of TROUPE_OVERLAP=0", "[actors]") {
  const auto in = with_penalties();
  auto o = small_engine();
  o.kv_cache_blocks = 24;  // some preemption too
  o.admission_reserve = 0;
  o.steps_in_flight = 1;
  const auto want = ref().run(in, o);
  for (int32_t k : {2, 3}) {
    for (bool overlap : {true, false}) {
      INFO(k << " steps in flight, overlap " << overlap);
      lagged_runtime l(o, k, overlap);
      require_equal(want, through_runtime(*l.rt, in));
      require_drained(*l.rt);
      if (overlap) CHECK(l.plan->overlapped > 0);
      else CHECK(l.plan->overlapped == 0);
      CHECK(l.plan->begun > 0);
    }
  }
}

TEST_CASE("steps whose samplers have penalties are never launched before the step before finishes", "[actors]") {
  std::vector<engine::llm_request> in;
  for (size_t i = 0; i < 4; ++i) {
    engine::llm_request r = story(i, 20);
    r.params.ignore_eos = true;
    if (i % 2 == 0) r.params.sampling.presence_penalty = 2.0f;
    else r.params.sampling.frequency_penalty = 2.0f;
    in.push_back(r);
  }
  auto o = small_engine();
  o.steps_in_flight = 1;
  const auto want = ref().run(in, o);
  lagged_runtime l(o, 2, true);
  require_equal(want, through_runtime(*l.rt, in));
  CHECK(l.plan->overlapped == 0);
  CHECK(l.plan->not_ready > 0);  // the lag was there: steps waited for their samples
  require_drained(*l.rt);
}

TEST_CASE("cancelling streams mid-way while steps overlap leaves the others' outputs and no block behind", "[actors]") {
  std::vector<engine::llm_request> in;
  for (size_t i = 0; i < 6; ++i) {
    engine::llm_request r = story(i, 40);
    r.params.ignore_eos = true;
    if (i % 2 == 1) {
      r.params.sampling.temperature = 0.9f;
      r.params.sampling.seed = 31 + i;
    }
    in.push_back(r);
  }
  auto o = small_engine();
  o.steps_in_flight = 1;
  const auto want = ref().run(in, o);
  const std::vector<size_t> cancelled = {1, 4};
  for (bool overlap : {true, false}) {
    INFO("overlap " << overlap);
    lagged_runtime l(o, 2, overlap);
    std::vector<std::shared_ptr<request_stream>> streams;
    for (const auto& r : in) {
      submit_request s;
      s.prompt = r.prompt;
      s.params = r.params;
      auto st = l.rt->submit(s);
      REQUIRE(st.has_value());
      streams.push_back(*st);
    }
    for (size_t c : cancelled) {
      std::vector<int32_t> ids;
      while (ids.size() < 3) {
        auto ev = streams[c]->next(std::chrono::milliseconds(100));
        REQUIRE(ev.has_value());
        REQUIRE_FALSE(ev->finished);
        ids.insert(ids.end(), ev->token_ids.begin(), ev->token_ids.end());
      }
      streams[c]->cancel();
      const auto rest = collect(*streams[c], 1, std::chrono::seconds(20));
      ids.insert(ids.end(), rest[0].ids.begin(), rest[0].ids.end());
      CHECK(rest[0].finish_reason == "abort");
      const auto& full = want[c].samples[0].output_ids;
      REQUIRE(ids.size() < full.size());
      CHECK(std::equal(ids.begin(), ids.end(), full.begin()));  // what came before the cancel is unchanged
    }
    for (size_t i = 0; i < in.size(); ++i) {
      if (i == cancelled[0] || i == cancelled[1]) continue;
      INFO("request " << i);
      const auto got = collect(*streams[i], 1, std::chrono::seconds(20));
      CHECK(got[0].ids == want[i].samples[0].output_ids);
      CHECK(got[0].finish_reason == "length");
    }
    require_drained(*l.rt);
    if (overlap) CHECK(l.plan->overlapped > 0);
    else CHECK(l.plan->overlapped == 0);
  }
}

TEST_CASE("a device error while a step is launched and unfinished restarts the executor and outputs hold", "[actors]") {
  std::vector<engine::llm_request> in;
  for (size_t i = 0; i < 4; ++i) {
    engine::llm_request r = story(i, 30);
    r.params.ignore_eos = true;
    in.push_back(r);
  }
  auto o = small_engine();
  o.steps_in_flight = 1;
  const auto want = ref().run(in, o);
  lagged_runtime l(o, 2, true, std::chrono::microseconds(2000), 8);
  const auto got = through_runtime(*l.rt, in);
  require_equal(want, got);
  for (const auto& g : got) CHECK(g[0].ids.size() == 30);  // no token twice, none lost
  CHECK(l.plan->instances == 2);
  CHECK(l.plan->overlapped > 0);
  const auto m = l.rt->metrics();
  CHECK(m.requests_finished.at("length") == in.size());
  require_drained(*l.rt);
}

TEST_CASE("a request alone: its last step (every step at 1 in flight) is finished without a next message", "[actors]") {
  auto in = std::vector<engine::llm_request>{story(2, 24)};
  in[0].params.ignore_eos = true;
  auto o = small_engine();
  o.steps_in_flight = 1;
  const auto want = ref().run(in, o);
  for (int32_t k : {1, 2}) {
    INFO(k << " steps in flight");
    lagged_runtime l(o, k, true, std::chrono::microseconds(5000));
    const auto t0 = std::chrono::steady_clock::now();
    submit_request s;
    s.prompt = in[0].prompt;
    s.params = in[0].params;
    auto st = l.rt->submit(s);
    REQUIRE(st.has_value());
    const auto got = collect(**st, 1, std::chrono::seconds(20));  // a step left unfinished fails here
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(got[0].ids == want[0].samples[0].output_ids);
    CHECK(got[0].ids.size() == 24);
    // About 25 steps of 5 ms lag: a step finished only by a timeout, or late, shows here.
    CHECK(took < std::chrono::seconds(3));
    if (k == 1) {
      CHECK(l.plan->overlapped == 0);  // nothing is ever behind a step
    } else {
      // While a step runs the executor waits for the next one (planned meanwhile) rather than
      // finishing the step at once, so the steps go back to back: most of them overlap.
      CHECK(l.plan->overlapped > 12);
    }
    require_drained(*l.rt);
  }
}
