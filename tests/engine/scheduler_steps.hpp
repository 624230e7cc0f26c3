// Shared by the scheduler tests: requests of consecutive token ids, a step's plan as (id, tokens),
// one step with every sampling request sampling the same token, and small scheduler options.
#pragma once

#include <utility>
#include <vector>

#include "engine/core/scheduler.hpp"

namespace troupe::engine::testing {

using ids = std::vector<int32_t>;
using plan_t = std::vector<std::pair<request_id, int32_t>>;

/// n consecutive ids from `first`.
inline ids range(int32_t first, int32_t n) {
  ids out;
  for (int32_t i = 0; i < n; ++i) out.push_back(first + i);
  return out;
}

/// A request whose prompt ids depend on its id (so prompts never share a prefix); eos id 2.
inline request make(request_id id, int32_t prompt_len, int64_t max_tokens = 16, int32_t priority = 0) {
  request_params p;
  p.max_tokens = max_tokens;
  p.priority = priority;
  return request(id, range(100 + int32_t(id) * 50, prompt_len), p, ids{2});
}

/// (id, tokens) of each scheduled entry.
inline plan_t plan(const schedule_output& out) {
  plan_t v;
  for (const auto& s : out.scheduled) v.emplace_back(s.id, s.num_tokens);
  return v;
}

/// Runs one step in which every sampling request samples `token`.
inline std::vector<request_output> step(scheduler& s, schedule_output& out, int32_t token = 7) {
  out = s.schedule();
  std::vector<int32_t> sampled(out.scheduled.size(), -1);
  for (size_t i = 0; i < sampled.size(); ++i)
    if (out.scheduled[i].samples) sampled[i] = token;
  return s.update_from_output(out, sampled);
}

inline scheduler_options opts(int32_t blocks, int32_t block_size, int32_t budget, int32_t seqs = 16) {
  scheduler_options o;
  o.num_blocks = blocks;
  o.block_size = block_size;
  o.max_num_batched_tokens = budget;
  o.max_num_seqs = seqs;
  o.max_model_len = 1024;
  o.admission_reserve = 0;  // admit what fits now: these tests drive preemption (test_scheduler_reserve.cpp: the reserve)
  return o;
}

}  // namespace troupe::engine::testing
