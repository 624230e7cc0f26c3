// The runtime under load: many requests from many threads, admission limits (resource_exhausted at
// once), cancellation freeing every block, drain, and metrics that add up.
#include "runtime_helpers.hpp"

#include <map>
#include <mutex>
#include <thread>

using namespace troupe;
using namespace troupe::test;

namespace {

// Waits until the metrics say so (the scheduler publishes after each event).
template <class F>
bool eventually(runtime& rt, F ok, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ok(rt.metrics())) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return ok(rt.metrics());
}

}  // namespace

TEST_CASE("many requests from many threads each get the text they get alone", "[actors]") {
  auto o = options_for(small_engine());
  o.max_waiting = 1000;
  auto rt = start(o);
  // Each prompt alone first.
  std::map<std::string, collected_sample> alone;
  for (const auto& p : story_prompts()) {
    auto s = rt->submit(greedy(p, 16));
    REQUIRE(s.has_value());
    alone[p] = collect(**s, 1)[0];
  }
  constexpr int threads = 8, per_thread = 12;
  std::mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::vector<std::pair<std::string, std::shared_ptr<request_stream>>> mine;
      for (int i = 0; i < per_thread; ++i) {
        const auto& p = story_prompts()[size_t(t + i) % story_prompts().size()];
        auto s = rt->submit(greedy(p, 16));
        std::lock_guard lock(mu);
        if (!s) failures.push_back(s.error().message);
        else mine.emplace_back(p, *s);
      }
      for (auto& [p, s] : mine) {
        std::vector<int32_t> ids;
        std::string text;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (!s->done() && std::chrono::steady_clock::now() < deadline)
          if (auto ev = s->next(std::chrono::milliseconds(50))) {
            ids.insert(ids.end(), ev->token_ids.begin(), ev->token_ids.end());
            text += ev->text;
          }
        std::lock_guard lock(mu);
        if (!s->done()) failures.push_back("a stream did not finish");
        else if (ids != alone[p].ids || text != alone[p].text) failures.push_back("different output for " + p);
      }
    });
  for (auto& th : pool) th.join();
  for (const auto& f : failures) FAIL_CHECK(f);
  CHECK(failures.empty());
  REQUIRE(eventually(*rt, [](const runtime_metrics& m) { return m.requests_running == 0 && m.kv_blocks_used == 0; }));
  const auto m = rt->metrics();
  const uint64_t total = threads * per_thread + story_prompts().size();
  CHECK(m.requests_finished.at("length") + (m.requests_finished.count("stop") ? m.requests_finished.at("stop") : 0) == total);
  CHECK(m.e2e_latency.count == total);
  CHECK(m.time_to_first_token.count == total);
  CHECK(m.queue_time.count == total);
}

TEST_CASE("1,000 streams at once all complete", "[actors]") {
  auto o = options_for(small_engine());
  o.max_waiting = 1000;
  o.engine.max_num_seqs = 256;
  o.engine.kv_cache_blocks = 1024;
  o.engine.max_num_batched_tokens = 512;
  auto rt = start(o);
  std::vector<std::shared_ptr<request_stream>> streams(1000);
  std::vector<std::thread> submitters;
  std::atomic<int> failed{0};
  for (int t = 0; t < 4; ++t)
    submitters.emplace_back([&, t] {
      for (int i = t; i < 1000; i += 4) {
        auto s = rt->submit(greedy(story_prompts()[size_t(i) % 6], 8));
        if (s) streams[size_t(i)] = *s;
        else ++failed;
      }
    });
  for (auto& th : submitters) th.join();
  REQUIRE(failed.load() == 0);
  size_t tokens = 0;
  for (auto& s : streams) {
    const auto out = collect(*s, 1);
    CHECK(!out[0].finish_reason.empty());
    tokens += out[0].ids.size();
  }
  REQUIRE(eventually(*rt, [](const runtime_metrics& m) { return m.requests_running == 0 && m.kv_blocks_used == 0; }));
  const auto m = rt->metrics();
  CHECK(m.generation_tokens == tokens);
  CHECK(m.e2e_latency.count == 1000);
}

TEST_CASE("admission beyond max_waiting answers resource_exhausted at once; admitted requests complete", "[actors]") {
  auto o = options_for(small_engine());
  o.max_waiting = 4;
  o.engine.max_num_seqs = 2;  // most requests wait
  auto rt = start(o);
  std::vector<std::shared_ptr<request_stream>> admitted;
  int rejected = 0;
  for (int i = 0; i < 40; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto s = rt->submit(greedy(story_prompts()[size_t(i) % 6], 24));
    if (s) {
      admitted.push_back(*s);
    } else {
      CHECK(s.error().code == errc::resource_exhausted);
      CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(50));
      ++rejected;
    }
  }
  CHECK(rejected > 0);
  CHECK(admitted.size() >= 4);
  for (auto& s : admitted) {
    const auto out = collect(*s, 1);
    CHECK(out[0].finish_reason == "length");
    CHECK(out[0].ids.size() == 24);
  }
  CHECK(rt->metrics().requests_rejected == uint64_t(rejected));
  // More samples than max_waiting could never be admitted: a bad request, not "try later".
  auto too_many = greedy("Tom had a big red ball.", 4);
  too_many.params.n = 5;
  auto refused = rt->submit(too_many);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == errc::invalid_argument);
  // Once they are done, there is room again.
  auto again = rt->submit(greedy("Tom had a big red ball.", 4));
  REQUIRE(again.has_value());
  CHECK(collect(**again, 1)[0].ids.size() == 4);
}

TEST_CASE("queued prompt tokens beyond the limit answer resource_exhausted", "[actors]") {
  auto o = options_for(small_engine());
  o.max_queued_prompt_tokens = 40;
  o.engine.max_num_seqs = 1;
  auto rt = start(o);
  std::vector<std::shared_ptr<request_stream>> admitted;
  int rejected = 0;
  for (int i = 0; i < 20; ++i) {
    auto s = rt->submit(greedy(story_prompts()[1], 32));  // about 25 tokens each
    if (s)
      admitted.push_back(*s);
    else {
      CHECK(s.error().code == errc::resource_exhausted);
      ++rejected;
    }
  }
  CHECK(rejected > 0);
  for (auto& s : admitted) CHECK(collect(*s, 1)[0].finish_reason == "length");
}

TEST_CASE("100 streams cancelled after a few tokens leave no running request and no used block", "[actors]") {
  auto o = options_for(small_engine());
  o.steps_in_flight = 2;  // the default, stated: a cancelled request may have two steps in flight
  o.max_waiting = 200;
  o.engine.kv_cache_blocks = 400;
  o.engine.max_num_seqs = 32;
  auto rt = start(o);
  std::vector<std::shared_ptr<request_stream>> streams;
  for (int i = 0; i < 100; ++i) {
    auto r = greedy(story_prompts()[size_t(i) % 6], 200);
    r.params.ignore_eos = true;
    auto s = rt->submit(r);
    REQUIRE(s.has_value());
    streams.push_back(*s);
  }
  // Cancel each one after it has produced a few tokens (or at once for those still waiting).
  int cancelled_after_tokens = 0;
  for (size_t i = 0; i < streams.size(); ++i) {
    auto& s = streams[i];
    size_t tokens = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (i < 40 && tokens < 3 && !s->done() && std::chrono::steady_clock::now() < deadline)
      if (auto ev = s->next(std::chrono::milliseconds(20))) tokens += ev->token_ids.size();
    if (tokens >= 3) ++cancelled_after_tokens;
    s->cancel();
    s->cancel();  // twice is harmless
  }
  CHECK(cancelled_after_tokens > 0);
  for (auto& s : streams) {
    const auto out = collect(*s, 1);
    CHECK(out[0].finish_reason == "abort");
    CHECK(out[0].ids.size() < 200);
  }
  REQUIRE(eventually(*rt, [](const runtime_metrics& m) {
    return m.requests_running == 0 && m.requests_waiting == 0 && m.kv_blocks_used == 0;
  }));
  const auto m = rt->metrics();
  CHECK(m.requests_finished.at("abort") == 100);
  CHECK(m.kv_blocks_total == 400);
}

TEST_CASE("drain stops admitting, lets short requests finish and cancels long ones after the grace", "[actors]") {
  auto plan = std::make_shared<failure_plan>();
  plan->failing_instances = 0;
  plan->delay_ms = 2;  // a long request needs seconds, far beyond the grace
  auto o = with_plan(options_for(small_engine()), plan);
  o.engine.max_num_seqs = 6;
  auto rt = start(o);
  std::vector<std::shared_ptr<request_stream>> shorts, longs;
  for (int i = 0; i < 3; ++i) {
    auto s = rt->submit(greedy(story_prompts()[size_t(i)], 4));
    REQUIRE(s.has_value());
    shorts.push_back(*s);
    auto l = greedy(story_prompts()[size_t(i)], 100000);
    l.params.ignore_eos = true;
    auto ls = rt->submit(l);
    REQUIRE(ls.has_value());
    longs.push_back(*ls);
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::thread drainer([&] { rt->drain(std::chrono::milliseconds(300)); });
  // While draining: unavailable.
  REQUIRE(eventually(*rt, [&](const runtime_metrics&) { return !rt->ready(); }));
  auto late = rt->submit(greedy("Once upon a time", 4));
  REQUIRE_FALSE(late.has_value());
  CHECK(late.error().code == errc::unavailable);
  drainer.join();
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(250));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  for (auto& s : shorts) CHECK(collect(*s, 1)[0].finish_reason == "length");
  for (auto& s : longs) {
    const auto out = collect(*s, 1);
    CHECK(out[0].finish_reason == "abort");
    CHECK(out[0].ids.size() > 0);
  }
  const auto m = rt->metrics();
  CHECK(m.requests_running == 0);
  CHECK(m.kv_blocks_used == 0);
}

TEST_CASE("cancel from another thread wakes a consumer blocked in next()", "[actors]") {
  auto plan = std::make_shared<failure_plan>();
  plan->failing_instances = 0;
  plan->delay_ms = 5;  // slow steps: the request is far from done when it is cancelled
  auto rt = start(with_plan(options_for(small_engine()), plan));
  auto r = greedy(story_prompts()[0], 1000);
  r.params.ignore_eos = true;
  auto s = rt->submit(r);
  REQUIRE(s.has_value());
  std::atomic<bool> got_abort{false};
  std::thread consumer([&] {
    while (!(*s)->done())
      if (auto ev = (*s)->next(std::chrono::seconds(30)))
        if (ev->finished) got_abort = ev->finish_reason == "abort";
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto t0 = std::chrono::steady_clock::now();
  (*s)->cancel();
  consumer.join();
  CHECK(got_abort.load());
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  REQUIRE(eventually(*rt, [](const runtime_metrics& m) { return m.kv_blocks_used == 0 && m.requests_running == 0; }));
}

TEST_CASE("drain with an unbounded grace waits for requests to finish", "[actors]") {
  auto rt = start(options_for(small_engine()));
  auto s = rt->submit(greedy(story_prompts()[0], 20));
  REQUIRE(s.has_value());
  rt->drain(std::chrono::milliseconds::max());
  CHECK(rt->metrics().requests_running == 0);
  const auto out = collect(**s, 1);
  CHECK(out[0].finish_reason == "length");
  CHECK(out[0].ids.size() == 20);
  rt->drain(std::chrono::milliseconds(-5));  // again, with nothing left: returns at once
  CHECK_FALSE(rt->ready());
}

TEST_CASE("metrics add up: tokens, finish reasons, histograms and mailbox depths", "[actors]") {
  auto rt = start(options_for(small_engine()));
  uint64_t prompt_tokens = 0, generated = 0;
  for (int i = 0; i < 6; ++i) {
    auto r = greedy(story_prompts()[size_t(i)], 10 + i);
    r.params.n = i == 1 ? 2 : 1;  // a prompt of more than one block
    auto s = rt->submit(r);
    REQUIRE(s.has_value());
    for (const auto& sample : collect(**s, r.params.n)) generated += sample.ids.size();
    prompt_tokens += (*s)->prompt_ids().size();
    CHECK((*s)->prompt_ids() == *rt->tokenizer().encode(story_prompts()[size_t(i)]));
  }
  REQUIRE(eventually(*rt, [](const runtime_metrics& m) { return m.requests_running == 0; }));
  const auto m = rt->metrics();
  CHECK(m.prompt_tokens == prompt_tokens);
  CHECK(m.generation_tokens == generated);
  uint64_t finished = 0;
  for (const auto& [reason, n] : m.requests_finished) finished += n;
  CHECK(finished == 7);  // samples
  CHECK(m.e2e_latency.count == 6);
  CHECK(m.time_to_first_token.count == 6);
  CHECK(m.queue_time.count == 6);
  CHECK(m.inter_token_latency.count == generated - 7);  // every token after a sample's first
  for (const auto* h : {&m.e2e_latency, &m.time_to_first_token, &m.queue_time, &m.inter_token_latency}) {
    REQUIRE(h->counts.size() == h->bounds.size() + 1);
    uint64_t sum = 0;
    for (auto c : h->counts) sum += c;
    CHECK(sum == h->count);
    CHECK(h->sum >= 0.0);
  }
  CHECK(m.e2e_latency.sum >= m.time_to_first_token.sum);
  CHECK(m.prefix_cache_queries > 0);
  CHECK(m.prefix_cache_hits > 0);  // the second sample shares the first one's prompt blocks
  CHECK(m.kv_blocks_total == 96);
  CHECK(m.requests_waiting == 0);
  for (const char* name : {"scheduler", "executor-0", "tokenizer-0", "tokenizer-1"}) {
    INFO(name);
    REQUIRE(m.mailbox_depth.count(name) == 1);
    CHECK(m.mailbox_depth.at(name) >= 0);
  }
}
