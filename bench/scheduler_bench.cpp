// Scheduler overhead per step (256 running requests of 1,000-token contexts) and CPU throughput of
// engine::llm with 1, 8 and 32 concurrent requests on stories260k.
//
//   scheduler_bench [--steps N] [--threads T] [--model DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "engine/core/llm.hpp"
#include "engine/core/scheduler.hpp"
#include "kernels/cpu/cpu_backend.hpp"

using namespace troupe;
using namespace troupe::engine;
using clock_type = std::chrono::steady_clock;

namespace {

double micros(clock_type::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// CPU time of this thread in microseconds (what a step costs when the shared machine is busy).
double thread_cpu_us() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e6 + double(t.tv_nsec) / 1e3;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * double(v.size())))];
}

// 256 requests with 1,000-token prompts, prefilled, then timed decode steps.
void scheduler_overhead(int steps) {
  const int32_t seqs = 256, context = 1000, block_size = 16;
  scheduler_options o;
  o.block_size = block_size;
  o.num_blocks = seqs * ((context + steps + 64) / block_size + 1);
  o.max_num_seqs = seqs;
  o.max_num_batched_tokens = 8192;
  o.max_model_len = context + steps + 64;
  scheduler s(o);
  std::mt19937 rng(1);
  for (int32_t i = 0; i < seqs; ++i) {
    std::vector<int32_t> prompt(static_cast<size_t>(context));
    for (auto& t : prompt) t = int32_t(rng() % 32000);
    request_params p;
    p.max_tokens = steps + 32;
    p.ignore_eos = true;
    if (!s.add_request(request(i, std::move(prompt), p, {2}))) std::abort();
  }
  auto run_step = [&](double* sched_us, double* update_us, double* cpu_us) {
    const double c0 = thread_cpu_us();
    auto t0 = clock_type::now();
    schedule_output out = s.schedule();
    auto t1 = clock_type::now();
    std::vector<int32_t> sampled(out.scheduled.size());
    for (size_t i = 0; i < sampled.size(); ++i) sampled[i] = out.scheduled[i].samples ? int32_t(rng() % 32000) : -1;
    auto t2 = clock_type::now();
    auto res = s.update_from_output(out, sampled);
    auto t3 = clock_type::now();
    const double c1 = thread_cpu_us();
    if (cpu_us) *cpu_us = c1 - c0 - micros(t2 - t1);
    if (sched_us) *sched_us = micros(t1 - t0);
    if (update_us) *update_us = micros(t3 - t2);
    return out.scheduled.size();
  };
  while (s.kv().num_requests() < size_t(seqs) || s.find(seqs - 1)->num_output_tokens() == 0) run_step(nullptr, nullptr, nullptr);
  const auto n = static_cast<size_t>(steps);
  std::vector<double> sched(n), update(n), total(n), cpu(n);
  size_t batch = 0;
  for (int i = 0; i < steps; ++i) {
    batch = run_step(&sched[size_t(i)], &update[size_t(i)], &cpu[size_t(i)]);
    total[size_t(i)] = sched[size_t(i)] + update[size_t(i)];
  }
  auto mean = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return sum / double(v.size());
  };
  std::printf("scheduler overhead: %zu running requests, contexts %d..%d tokens, %d decode steps\n", batch,
              context + 1, context + steps, steps);
  std::printf("  schedule()            mean %7.1f us  median %7.1f us  p99 %7.1f us\n", mean(sched),
              percentile(sched, 0.5), percentile(sched, 0.99));
  std::printf("  update_from_output()  mean %7.1f us  median %7.1f us  p99 %7.1f us\n", mean(update),
              percentile(update, 0.5), percentile(update, 0.99));
  std::printf("  both                  mean %7.1f us  median %7.1f us  p99 %7.1f us  max %7.1f us\n",
              mean(total), percentile(total, 0.5), percentile(total, 0.99), percentile(total, 1.0));
  std::printf("  both, thread CPU time mean %7.1f us  median %7.1f us  p99 %7.1f us  max %7.1f us\n", mean(cpu),
              percentile(cpu, 0.5), percentile(cpu, 0.99), percentile(cpu, 1.0));
}

// 32 requests (greedy, 128 new tokens each, ignore_eos) with at most `concurrent` running at once.
void throughput(const std::string& dir, int threads) {
  kernels::cpu::cpu_backend backend(threads);
  auto model = llama_model::load(dir, backend);
  auto tok = tokenizer::load(dir);
  if (!model || !tok) {
    std::fprintf(stderr, "cannot load %s\n", dir.c_str());
    std::exit(1);
  }
  const char* starts[] = {"Once upon a time", "The little dog", "Lily and Tom", "One day, a bird",
                          "Sam had a red ball", "The sun was hot", "Mia liked to paint", "A big truck"};
  std::vector<llm_request> reqs(32);
  for (size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].prompt = std::string(starts[i % 8]) + (i >= 8 ? " and a friend" : "") + (i >= 16 ? " went out." : ".");
    reqs[i].params.sampling.temperature = 0.0f;
    reqs[i].params.max_tokens = 128;
    reqs[i].params.ignore_eos = true;
  }
  std::printf("CPU throughput on %s, %d backend thread(s): 32 requests x 128 new tokens\n", dir.c_str(), threads);
  for (int32_t concurrent : {1, 8, 32}) {
    llm_options o;
    o.max_num_seqs = concurrent;
    o.kv_cache_blocks = 512;
    auto e = llm::create(**model, *tok, o);
    if (!e) std::exit(1);
    (*e)->generate(std::span<const llm_request>(reqs.data(), 1));  // warm-up
    const uint64_t steps0 = (*e)->steps();
    auto t0 = clock_type::now();
    auto outs = (*e)->generate(reqs);
    const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    size_t generated = 0;
    for (const auto& out : outs) generated += out.samples[0].output_ids.size();
    std::printf("  max_num_seqs %2d: %5zu tokens in %6.3f s = %8.0f tokens/s (%llu steps)\n", concurrent, generated,
                secs, double(generated) / secs, static_cast<unsigned long long>((*e)->steps() - steps0));
  }
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 1000, threads = 1;
  std::string dir = TROUPE_DEFAULT_MODEL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--steps") == 0) steps = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--model") == 0) dir = argv[i + 1];
  }
  scheduler_overhead(std::max(steps, 10));
  throughput(dir, std::max(threads, 1));
  return 0;
}
