// The scheduler's step: running requests first (preempting when blocks run out), then admissions.
#include "engine/core/scheduler.hpp"

#include <algorithm>
#include <cmath>

namespace troupe::engine {

namespace {

bool contains(const std::vector<int32_t>& v, int32_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

template <class T>
void erase_id(std::vector<T>& v, request_id id) {
  v.erase(std::remove_if(v.begin(), v.end(), [id](const T& x) { return x.id == id; }), v.end());
}

}  // namespace

expected<void> validate(const scheduler_options& o) {
  if (o.num_blocks <= 0) return make_error("the KV cache needs at least one block, got ", o.num_blocks);
  if (o.block_size <= 0) return make_error("block_size must be positive, got ", o.block_size);
  if (o.max_num_seqs <= 0) return make_error("max_num_seqs must be positive, got ", o.max_num_seqs);
  if (o.max_num_batched_tokens <= 0)
    return make_error("max_num_batched_tokens must be positive, got ", o.max_num_batched_tokens);
  if (o.max_model_len < 2) return make_error("max_model_len must be at least 2, got ", o.max_model_len);
  if (!(o.admission_reserve >= 0 && o.admission_reserve <= 1))
    return make_error("admission_reserve must be in [0, 1], got ", o.admission_reserve);
  if (!(o.admission_reserve_floor >= 0 && o.admission_reserve_floor <= 1))
    return make_error("admission_reserve_floor must be in [0, 1], got ", o.admission_reserve_floor);
  if (o.admission_reserve_decay_steps <= 0)
    return make_error("admission_reserve_decay_steps must be positive, got ", o.admission_reserve_decay_steps);
  return {};
}

scheduler::scheduler(const scheduler_options& options, block_hash_fn hash)
    : options_(options),
      kv_(options.num_blocks, options.block_size, options.enable_prefix_caching, std::move(hash)) {
  TROUPE_CHECK(validate(options).has_value());
  // A request alone must always fit: it never needs the K/V of its last token.
  max_len_ = std::min<int64_t>(options.max_model_len, int64_t{options.num_blocks} * options.block_size + 1);
  reserve_ = options.admission_reserve;
  stats_.admission_reserve = reserve_;
}

expected<void> scheduler::add_request(request r) {
  const int64_t len = r.num_prompt_tokens();
  const int64_t cache_tokens = int64_t{options_.num_blocks} * options_.block_size;
  if (requests_.count(r.id()) != 0) return make_error("request id ", r.id(), " is already in use");
  if (len == 0) return make_error("the prompt is empty (no tokens to continue from)");
  if (len >= options_.max_model_len)
    return make_error("the prompt has ", len, " tokens but max_model_len is ", options_.max_model_len,
                      ", leaving no room to generate");
  if (len > cache_tokens)
    return make_error("the prompt has ", len, " tokens but the whole KV cache holds only ", cache_tokens,
                      " (", options_.num_blocks, " blocks of ", options_.block_size, ")");
  if (r.params().max_tokens < 1) return make_error("max_tokens must be at least 1, got ", r.params().max_tokens);
  if (auto ok = validate(r.params().sampling); !ok) return ok.error();
  if (r.params().logprobs < -1 || r.params().logprobs > max_logprobs)
    return make_error("logprobs must be within [0, ", max_logprobs, "] (or -1: none), got ", r.params().logprobs);
  if (r.params().prompt_logprobs < -1 || r.params().prompt_logprobs > max_logprobs)
    return make_error("prompt_logprobs must be within [0, ", max_logprobs, "] (or -1: none), got ",
                      r.params().prompt_logprobs);
  if (r.num_output_tokens() != 0 || r.status != request_status::waiting)
    return make_error("request ", r.id(), " has already run");
  auto owned = std::make_unique<request>(std::move(r));
  owned->arrival = next_arrival_++;
  waiting_.insert(owned.get());
  requests_.emplace(owned->id(), std::move(owned));
  return {};
}

const request* scheduler::find(request_id id) const {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : it->second.get();
}

bool scheduler::abort_request(request_id id, std::string reason) {
  return finish_request(id, request_status::finished_aborted, std::move(reason));
}

bool scheduler::finish_request(request_id id, request_status status, std::string reason) {
  TROUPE_CHECK(status >= request_status::finished_stopped);
  auto it = requests_.find(id);
  if (it == requests_.end()) return false;
  it->second->status = status;
  it->second->stop_reason = std::move(reason);
  remove(*it->second);
  return true;
}

void scheduler::remove(request& r) {
  kv_.free(r);
  waiting_.erase(&r);
  auto pos = std::find(running_.begin(), running_.end(), &r);
  if (pos != running_.end()) running_.erase(pos);
  finished_since_step_.push_back(r.id());
  ++stats_.finished;
  requests_.erase(r.id());
}

schedule_output scheduler::schedule() {
  schedule_output out;
  out.step = ++stats_.steps;
  out.finished_request_ids = std::move(finished_since_step_);
  finished_since_step_.clear();
  int32_t budget = options_.max_num_batched_tokens;

  // Decodes first (one token to compute: the last one known or a placeholder), then continuing
  // prefills, each in (priority, arrival) order.
  const auto pending = [](const request* r) { return r->num_tokens_with_placeholders() - r->num_computed_tokens; };
  std::vector<request*> order;
  order.reserve(running_.size());
  for (request* r : running_)
    if (pending(r) == 1) order.push_back(r);
  for (request* r : running_)
    if (pending(r) > 1) order.push_back(r);
  for (request* r : order) {
    if (budget == 0) break;
    if (r->status == request_status::running) schedule_running(*r, budget, out);
  }
  if (out.preempted_request_ids.empty()) admit_waiting(budget, out);
  adapt_reserve(!out.preempted_request_ids.empty());

  // The step is planned: its tokens count as computed and its samples as placeholders, so the next
  // step can be planned before this one's result is back.
  for (const scheduled_request& e : out.scheduled) {
    request& r = *requests_.at(e.id);
    r.num_computed_tokens += e.num_tokens;
    if (e.samples) ++r.num_output_placeholders;
  }
  if (!out.empty()) {
    step_record rec{out.step, {}};
    for (const new_request_data& d : out.new_requests)
      if (d.num_computed_tokens > 0) rec.hit_admissions.push_back(d.id);
    in_flight_.push_back(std::move(rec));
  }
  return out;
}

// Whether one more token may be sampled for r: its outputs and the placeholders of the steps in
// flight stay within max_tokens and the length limit.
bool scheduler::may_sample(const request& r) const {
  return r.num_output_tokens() + r.num_output_placeholders < r.params().max_tokens &&
         r.num_tokens_with_placeholders() < max_len_;
}

bool scheduler::schedule_running(request& r, int32_t& budget, schedule_output& out) {
  const int32_t pending = r.num_tokens_with_placeholders() - r.num_computed_tokens;
  const int32_t n = std::min(pending, budget);
  // Nothing to compute, or its last token may be all it can still produce: the steps in flight
  // will finish it (or its result comes back first).
  if (n <= 0 || (n == pending && !may_sample(r))) return false;
  for (;;) {
    if (auto blocks = kv_.allocate_slots(r, n)) {
      add_to_step(r, n, false, std::move(*blocks), out);
      budget -= n;
      return true;
    }
    request* victim = running_.back();  // lowest priority, latest arrival
    preempt(*victim, budget, out);
    if (victim == &r) return false;
  }
}

void scheduler::preempt(request& victim, int32_t& budget, schedule_output& out) {
  if (victim.last_scheduled_step == out.step) {  // already in this step: take it back out
    for (const auto& s : out.scheduled)
      if (s.id == victim.id()) {
        budget += s.num_tokens;
        out.total_num_scheduled_tokens -= s.num_tokens;
      }
    erase_id(out.scheduled, victim.id());
    erase_id(out.new_requests, victim.id());
    erase_id(out.cached_requests, victim.id());
  }
  // num_computed_tokens excludes this step (it advances once the step is planned), so blocks cached
  // for it leave the cache; steps in flight still write theirs before any later step runs.
  kv_.free(victim);
  running_.erase(std::find(running_.begin(), running_.end(), &victim));
  victim.status = request_status::preempted;
  victim.num_computed_tokens = 0;
  ++victim.num_preemptions;
  waiting_.insert(&victim);
  out.preempted_request_ids.push_back(victim.id());
  ++stats_.preemptions;
}

// The length r may reach: its prompt and max_tokens outputs, within the length limit.
int64_t scheduler::final_length(const request& r) const {
  return std::min<int64_t>(int64_t{r.num_prompt_tokens()} + r.params().max_tokens, max_len_);
}

bool scheduler::runs_to_max_tokens(const request& r) {
  return r.params().ignore_eos && r.params().stop_token_ids.empty() && r.params().stop.empty();
}

void scheduler::adapt_reserve(bool preempted) {
  const double floor = std::min(options_.admission_reserve_floor, options_.admission_reserve);
  if (preempted)
    reserve_ = std::min(1.0, reserve_ + 0.1);
  else
    reserve_ = std::max(floor, reserve_ - (options_.admission_reserve - floor) / options_.admission_reserve_decay_steps);
  stats_.admission_reserve = reserve_;
}

void scheduler::admit_waiting(int32_t& budget, schedule_output& out) {
  if (waiting_.empty()) return;  // (the reserve's sum below is per step otherwise)
  const int32_t bs = options_.block_size;
  const auto blocks_for = [bs](int64_t tokens) { return (tokens + bs - 1) / bs; };
  // Blocks the running requests may still take, weighted: the whole growth of a request that cannot
  // end before max_tokens (it ignores EOS and has no stop token or string), the reserve's fraction of
  // the others' (they usually end early).
  // (A reserve of 0 admits what fits now for every request: vLLM's policy, kept for comparison.)
  const bool any_reserve = options_.admission_reserve > 0;
  const auto weight = [&](const request& x) { return any_reserve && runs_to_max_tokens(x) ? 1.0 : reserve_; };
  double growth = 0;
  for (const request* x : running_)
    growth += weight(*x) *
              double(std::max<int64_t>(0, blocks_for(final_length(*x)) - int64_t(kv_.blocks_of(x->id()).size())));
  while (!waiting_.empty() && budget > 0 && running_.size() < size_t(options_.max_num_seqs)) {
    request& r = **waiting_.begin();
    // Preempted with samples in flight: it comes back with them, once their results are in.
    if (r.num_output_placeholders > 0) break;
    computed_blocks hit = kv_.get_computed_blocks(r);
    const int32_t n = std::min(r.num_tokens() - hit.num_tokens, budget);
    // The blocks left free once r has its first ones must cover the reserve (r's own growth
    // included: its prompt's remaining chunks, then its outputs). A request alone always starts.
    const int64_t first_blocks = blocks_for(int64_t{hit.num_tokens} + n) - int64_t(hit.block_ids.size());
    const int64_t r_growth = std::max<int64_t>(0, blocks_for(final_length(r)) - blocks_for(int64_t{hit.num_tokens} + n));
    const auto reserved = static_cast<int64_t>(std::ceil(growth + weight(r) * double(r_growth)));
    if (!running_.empty() && kv_.pool().num_free_blocks() - first_blocks < reserved) break;
    auto blocks = kv_.allocate_slots(r, n, hit);
    if (!blocks) break;  // strict order: later arrivals do not overtake it
    waiting_.erase(waiting_.begin());
    r.num_computed_tokens = hit.num_tokens;
    r.status = request_status::running;
    running_.insert(std::upper_bound(running_.begin(), running_.end(), &r, by_priority{}), &r);
    add_to_step(r, n, true, {}, out);
    budget -= n;
    growth += weight(r) * double(r_growth);
  }
}

void scheduler::add_to_step(request& r, int32_t num_tokens, bool is_new, std::vector<int32_t> new_blocks,
                            schedule_output& out) {
  r.last_scheduled_step = out.step;
  const bool samples = r.num_computed_tokens + num_tokens == r.num_tokens_with_placeholders();
  out.scheduled.push_back({r.id(), num_tokens, samples});
  out.total_num_scheduled_tokens += num_tokens;
  if (is_new) {
    new_request_data d;
    d.id = r.id();
    d.token_ids = r.all_token_ids();
    d.num_prompt_tokens = r.num_prompt_tokens();
    d.sampling = r.params().sampling;
    auto table = kv_.blocks_of(r.id());
    d.block_ids.assign(table.begin(), table.end());
    d.num_computed_tokens = r.num_computed_tokens;
    d.logprobs = r.params().logprobs;
    d.prompt_logprobs = r.params().prompt_logprobs;
    out.new_requests.push_back(std::move(d));
  } else {
    cached_request_data d;
    d.id = r.id();
    d.new_block_ids = std::move(new_blocks);
    d.num_computed_tokens = r.num_computed_tokens;
    out.cached_requests.push_back(std::move(d));
  }
}

std::vector<request_output> scheduler::update_from_output(const schedule_output& output,
                                                          std::span<const int32_t> sampled) {
  TROUPE_CHECK(sampled.size() == output.scheduled.size());
  take_in_flight(output);
  std::vector<request_output> outs;
  for (size_t i = 0; i < output.scheduled.size(); ++i) {
    const scheduled_request& s = output.scheduled[i];
    if (!s.samples) continue;  // its tokens were counted as computed when the step was planned
    auto it = requests_.find(s.id);
    if (it == requests_.end()) continue;  // finished (stopped, aborted) after the step was planned
    request& r = *it->second;
    // A preempted request keeps this result: its sampler drew the token (it waits for it to come back).
    if (r.num_output_placeholders == 0) continue;  // not its step (ids are not reused while in flight)
    --r.num_output_placeholders;
    const int32_t token = sampled[i];
    TROUPE_CHECK(token >= 0);
    request_output o;
    o.id = r.id();
    const auto& p = r.params();
    if ((!p.ignore_eos && contains(r.eos_token_ids(), token)) || contains(p.stop_token_ids, token)) {
      r.status = request_status::finished_stopped;
      r.stop_reason = std::to_string(token);
    } else {
      r.append_output(token);
      o.new_token_ids.push_back(token);
      if (r.num_output_tokens() >= p.max_tokens || r.num_tokens() >= max_len_)
        r.status = request_status::finished_length;
    }
    if (r.finished()) {
      o.finished = true;
      o.reason = reason_of(r.status);
      o.stop_reason = r.stop_reason;
      remove(r);
    }
    outs.push_back(std::move(o));
  }
  return outs;
}

scheduler::step_record scheduler::take_in_flight(const schedule_output& output) {
  if (output.empty()) return {};
  TROUPE_CHECK(!in_flight_.empty() && in_flight_.front().step == output.step);  // in the order planned
  step_record rec = std::move(in_flight_.front());
  in_flight_.pop_front();
  return rec;
}

std::vector<request_output> scheduler::fail_step(const schedule_output& output, const std::string& why) {
  take_in_flight(output);
  std::vector<request_id> ids;
  for (const scheduled_request& s : output.scheduled) ids.push_back(s.id);
  for (const step_record& later : in_flight_)
    ids.insert(ids.end(), later.hit_admissions.begin(), later.hit_admissions.end());
  std::vector<request_output> outs;
  for (request_id id : ids) {
    if (!finish_request(id, request_status::finished_error, why)) continue;  // ended before
    request_output o;
    o.id = id;
    o.finished = true;
    o.reason = finish_reason::error;
    o.stop_reason = why;
    outs.push_back(std::move(o));
  }
  kv_.clear_prefix_cache();
  return outs;
}

}  // namespace troupe::engine
