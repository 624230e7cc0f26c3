// Step inputs from a schedule output (positions, slots, block tables, offsets), forward, sampling.
#include "engine/core/model_runner.hpp"

#include <algorithm>

#include "config/switches.hpp"
#include "engine/core/step_sampling.hpp"

namespace troupe::engine {

model_runner::model_runner(llama_model& model, int32_t num_blocks, int32_t block_size)
    : model_(model), block_size_(block_size), cache_(model.make_kv_cache(num_blocks, block_size)) {}

bool overlap_enabled() { return !config::switched_off("TROUPE_OVERLAP"); }

uint64_t model_runner::fallback_seed(request_id id) {
  // splitmix64 of the id: distinct, well-mixed streams per request.
  uint64_t z = static_cast<uint64_t>(id) + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void model_runner::apply(const schedule_output& out) {
  // Samples of an earlier step that were never recorded: that step failed. The scheduler ends
  // those requests, so a later step already planned for them computes inputs it will discard.
  for (request_id id : awaiting_sample_)
    if (auto it = states_.find(id); it != states_.end()) it->second.lost = true;
  awaiting_sample_.clear();
  for (request_id id : out.finished_request_ids) states_.erase(id);
  for (request_id id : out.preempted_request_ids) {
    auto it = states_.find(id);
    if (it == states_.end()) continue;
    it->second.block_ids.clear();
    it->second.num_computed_tokens = 0;
  }
  for (const new_request_data& d : out.new_requests) {
    request_state& st = states_[d.id];
    st.token_ids = d.token_ids;
    st.block_ids = d.block_ids;
    st.num_computed_tokens = d.num_computed_tokens;
    st.num_prompt_tokens = d.num_prompt_tokens;
    st.logprobs = d.logprobs;
    st.prompt_logprobs = d.prompt_logprobs;
    st.lost = false;
    if (!st.pick) {  // first time here (a resumed request keeps its sampler and random stream)
      st.pick = std::make_unique<sampler>(d.sampling, fallback_seed(d.id));
      const auto prompt_end = st.token_ids.begin() + d.num_prompt_tokens;
      st.pick->set_prompt(std::span<const int32_t>(st.token_ids.data(), size_t(d.num_prompt_tokens)));
      for (auto t = prompt_end; t != st.token_ids.end(); ++t) st.pick->record(*t);
    }
  }
  for (const cached_request_data& d : out.cached_requests) {
    auto it = states_.find(d.id);
    TROUPE_CHECK(it != states_.end());
    request_state& st = it->second;
    st.block_ids.insert(st.block_ids.end(), d.new_block_ids.begin(), d.new_block_ids.end());
    st.num_computed_tokens = d.num_computed_tokens;
  }
}

expected<void> model_runner::build(const schedule_output& out, launched_step& step) {
  step_input& in = input_;
  in = step_input{};
  const auto n_total = size_t(out.total_num_scheduled_tokens);
  in.token_ids.reserve(n_total);
  in.positions.reserve(n_total);
  in.slot_mapping.reserve(n_total);
  in.query_start_loc.push_back(0);
  // The step launched before this one and not finished: its samples are still on the device, and
  // a request's last token here may be one of them.
  const launched_step* before = launched_.empty() ? nullptr : &launched_.back();
  const auto unfinished_sample = [&](request_id id) -> int32_t {
    if (before == nullptr) return -1;
    auto it = before->sample_row.find(id);
    return it == before->sample_row.end() ? -1 : it->second;
  };
  int32_t max_blocks = 1;
  for (const scheduled_request& s : out.scheduled)
    if (s.samples) step.sampling.push_back(s.id);
  for (const scheduled_request& s : out.scheduled) {
    request_state& st = states_.at(s.id);
    const int32_t len = st.num_computed_tokens + s.num_tokens;
    // Placeholders are tokens this runner sampled in earlier steps; a request whose sampling step
    // failed has none for them, and its result is discarded: any token will do.
    if (st.lost && len > static_cast<int32_t>(st.token_ids.size())) st.token_ids.resize(size_t(len), 0);
    const int32_t known = static_cast<int32_t>(st.token_ids.size()) + (unfinished_sample(s.id) >= 0 ? 1 : 0);
    if (len > known || int64_t(st.block_ids.size()) * block_size_ < len)
      return make_error("step ", out.step, ": request ", s.id, " is scheduled past its tokens or blocks");
    max_blocks = std::max(max_blocks, (len + block_size_ - 1) / block_size_);
  }
  in.max_blocks_per_seq = max_blocks;
  in.block_tables.assign(out.scheduled.size() * size_t(max_blocks), 0);
  for (size_t i = 0; i < out.scheduled.size(); ++i) {
    const scheduled_request& s = out.scheduled[i];
    const request_state& st = states_.at(s.id);
    const int32_t start = st.num_computed_tokens, len = start + s.num_tokens;
    for (int32_t p = start; p < len; ++p) {
      if (p < static_cast<int32_t>(st.token_ids.size())) {
        in.token_ids.push_back(st.token_ids[size_t(p)]);
      } else {  // the unfinished step's sample, taken on the device
        in.fed_ticket = before->ticket;
        in.fed_rows.push_back(unfinished_sample(s.id));
        in.fed_at.push_back(static_cast<int32_t>(in.token_ids.size()));
        in.token_ids.push_back(0);
      }
      in.positions.push_back(p);
      in.slot_mapping.push_back(st.block_ids[size_t(p / block_size_)] * block_size_ + p % block_size_);
    }
    in.query_start_loc.push_back(in.query_start_loc.back() + s.num_tokens);
    in.seq_lens.push_back(len);
    const size_t nb = size_t((len + block_size_ - 1) / block_size_);
    std::copy_n(st.block_ids.begin(), nb, in.block_tables.begin() + ptrdiff_t(i * size_t(max_blocks)));
    const int32_t first_row = in.query_start_loc[i];
    if (st.prompt_logprobs >= 0)  // row p predicts token p + 1
      for (int32_t p = std::max(start, st.next_prompt_logprob - 1); p < len && p + 1 < st.num_prompt_tokens; ++p) {
        in.logits_indices.push_back(first_row + (p - start));
        step.rows.push_back({i, st.token_ids[size_t(p) + 1]});
      }
    if (s.samples) {
      step.sample_row[s.id] = static_cast<int32_t>(step.rows.size());
      in.logits_indices.push_back(in.query_start_loc.back() - 1);
      step.rows.push_back({i, -1});
    }
  }
  return {};
}

expected<step_result> model_runner::execute(const schedule_output& out) {
  TROUPE_CHECK(launched_.empty());
  if (auto ok = launch(out); !ok) return ok.error();
  return finish();
}

// The sampling rows of a launched step, with the samplers of the requests still here.
std::vector<sampling_row> model_runner::sampling_rows(const launched_step& step) {
  std::vector<sampling_row> rows;
  rows.reserve(step.rows.size());
  for (const row_use& u : step.rows) {
    auto it = states_.find(step.output->scheduled[u.entry].id);
    request_state* st = it == states_.end() ? nullptr : &it->second;
    rows.push_back({u.entry, u.prompt_token, st ? st->pick.get() : nullptr,
                    st == nullptr ? -1 : u.prompt_token >= 0 ? st->prompt_logprobs : st->logprobs});
  }
  return rows;
}

expected<void> model_runner::launch(const schedule_output& out) {
  TROUPE_CHECK(launched_.size() < 2);
  apply(out);
  launched_step step;
  step.output = &out;
  if (!out.scheduled.empty()) {
    // Until the step is launched (an error or an exception on the way), its sampling requests
    // count as a failed step's: the next step marks them lost.
    auto ok = build(out, step);
    const size_t failed_before = awaiting_sample_.size();
    awaiting_sample_.insert(awaiting_sample_.end(), step.sampling.begin(), step.sampling.end());
    if (!ok) return ok.error();
    auto logits = model_.forward_device(input_, *cache_);
    if (!logits) return logits.error();
    for (const row_use& u : step.rows)
      if (u.prompt_token >= 0) ++states_.at(out.scheduled[u.entry].id).next_prompt_logprob;
    if (!step.rows.empty()) step.ticket = begin_step_sampling(model_.backend(), *logits, sampling_rows(step));
    for (const scheduled_request& s : out.scheduled) states_.at(s.id).num_computed_tokens += s.num_tokens;
    awaiting_sample_.resize(failed_before);
  }
  launched_.push_back(std::move(step));
  return {};
}

expected<step_result> model_runner::finish() {
  TROUPE_CHECK(!launched_.empty());
  launched_step step = std::move(launched_.front());
  launched_.pop_front();
  const schedule_output& out = *step.output;
  step_result res;
  res.sampled.assign(out.scheduled.size(), -1);
  res.logprobs.resize(out.scheduled.size());
  res.prompt_logprobs.resize(out.scheduled.size());
  if (out.scheduled.empty()) return res;
  const size_t failed_before = awaiting_sample_.size();  // (as in launch, until the samples are recorded)
  awaiting_sample_.insert(awaiting_sample_.end(), step.sampling.begin(), step.sampling.end());
  if (step.ticket >= 0) end_step_sampling(model_.backend(), step.ticket, sampling_rows(step), res);
  // A device error leaves the ops doing nothing: no token of this step can be trusted.
  if (const std::string err = model_.backend().last_error(); !err.empty())
    return make_error("step ", out.step, ": the device failed: ", err);
  record_samples(out, res);
  awaiting_sample_.resize(failed_before);
  return res;
}

bool model_runner::may_launch_before_finish(const schedule_output& next) const {
  if (launched_.size() != 1) return false;
  const auto needs_history = [](const sampling_params& p) {
    return p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  };
  for (const scheduled_request& s : next.scheduled) {
    if (!s.samples) continue;
    auto it = states_.find(s.id);
    if (it != states_.end() && it->second.pick) {
      if (needs_history(it->second.pick->params())) return false;
      continue;
    }
    for (const new_request_data& d : next.new_requests)
      if (d.id == s.id && needs_history(d.sampling)) return false;
  }
  return true;
}

bool model_runner::oldest_ready() {
  return launched_.empty() || launched_.front().ticket < 0 || model_.backend().sample_ready(launched_.front().ticket);
}

void model_runner::record_samples(const schedule_output& out, const step_result& res) {
  // The next step may already be planned with these tokens as placeholders: they become its inputs
  // (a request the next step's launch already ended keeps none).
  for (size_t i = 0; i < out.scheduled.size(); ++i)
    if (out.scheduled[i].samples)
      if (auto it = states_.find(out.scheduled[i].id); it != states_.end()) it->second.token_ids.push_back(res.sampled[i]);
}

}  // namespace troupe::engine
