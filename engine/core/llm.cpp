// The offline loop: tokenise, fan out n samples, schedule, run, detokenise, until every request ends.
#include "engine/core/llm.hpp"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <future>
#include <limits>
#include <optional>
#include <unordered_map>

#include "engine/core/runner_thread.hpp"

namespace troupe::engine {

namespace {

constexpr int64_t default_cache_bytes = int64_t{256} << 20;

}  // namespace

llm::llm(llama_model& model, const tokenizer& tok, const scheduler_options& so, block_hash_fn hash)
    : model_(model),
      tok_(tok),
      sched_(std::make_unique<scheduler>(so, std::move(hash))),
      runner_(model, so.num_blocks, so.block_size),
      texts_(tok) {}

expected<scheduler_options> make_scheduler_options(const config::model_config& cfg, const llm_options& o) {
  scheduler_options so;
  so.block_size = o.block_size;
  so.enable_prefix_caching = o.enable_prefix_caching;
  so.max_num_seqs = o.max_num_seqs;
  so.max_num_batched_tokens = o.max_num_batched_tokens;
  so.admission_reserve = o.admission_reserve;
  so.max_model_len = o.max_model_len == 0 ? cfg.max_position_embeddings : o.max_model_len;
  if (so.max_model_len > cfg.max_position_embeddings)
    return make_error("max_model_len ", so.max_model_len, " exceeds the model's context of ",
                      cfg.max_position_embeddings, " tokens (max_position_embeddings)");
  if (o.block_size <= 0) return make_error("block_size must be positive, got ", o.block_size);
  if (o.steps_in_flight < 1) return make_error("steps_in_flight must be at least 1, got ", o.steps_in_flight);
  if (o.kv_cache_blocks < 0 || o.kv_cache_blocks > std::numeric_limits<int32_t>::max())
    return make_error("kv_cache_blocks must be within [0, 2^31), got ", o.kv_cache_blocks);
  int64_t blocks = o.kv_cache_blocks;
  if (blocks == 0) {
    const int64_t per_block = cfg.num_hidden_layers * 2 * o.block_size * cfg.num_key_value_heads *
                              cfg.head_dim * int64_t(sizeof(float));
    const int64_t per_seq = (so.max_model_len + o.block_size - 1) / o.block_size;
    blocks = std::max<int64_t>(1, std::min<int64_t>(int64_t{std::max(o.max_num_seqs, 1)} * per_seq,
                                                    default_cache_bytes / std::max<int64_t>(per_block, 1)));
  }
  so.num_blocks = static_cast<int32_t>(blocks);
  if (auto ok = validate(so); !ok) return ok.error();
  return so;
}

int64_t gpu_activation_bytes(const config::model_config& cfg, const llm_options& o, int64_t element_bytes) {
  const int64_t per_token = 3 * cfg.hidden_size + 2 * cfg.num_attention_heads * cfg.head_dim +
                            2 * cfg.num_key_value_heads * cfg.head_dim + 3 * cfg.intermediate_size;
  const int64_t rows = std::max<int64_t>(o.max_num_batched_tokens, 1);
  const int64_t logits = int64_t{std::max(o.max_num_seqs, 1)} * cfg.vocab_size * (element_bytes + 4);
  return 2 * rows * per_token * element_bytes + 2 * logits + (int64_t{512} << 20);
}

expected<scheduler_options> size_kv_cache(llama_model& model, const llm_options& o, std::string* note) {
  auto so = make_scheduler_options(model.config(), o);
  if (!so) return so.error();
  size_t free_bytes = 0, total_bytes = 0;
  if (o.kv_cache_blocks == 0 && model.backend().memory_info(free_bytes, total_bytes)) {
    if (!(o.gpu_memory_utilization > 0 && o.gpu_memory_utilization <= 1))
      return make_error("gpu_memory_utilization must be within (0, 1], got ", o.gpu_memory_utilization);
    const auto& cfg = model.config();
    const int64_t element = int64_t(kernels::dtype_size(model.backend().compute_type()));
    const int64_t per_block = cfg.num_hidden_layers * 2 * o.block_size * cfg.num_key_value_heads * cfg.head_dim * element;
    const double gib = double(int64_t{1} << 30);
    const int64_t used = int64_t(total_bytes - free_bytes);
    const int64_t budget = int64_t(o.gpu_memory_utilization * double(total_bytes));
    const int64_t activations = gpu_activation_bytes(cfg, o, element);
    const int64_t kv_bytes = budget - used - activations;
    const int64_t per_seq = (so->max_model_len + o.block_size - 1) / o.block_size;
    char numbers[400];
    std::snprintf(numbers, sizeof numbers,
                  "%.2f GiB x %.2f = %.2f GiB allowed; %.2f GiB in use (weights and others), %.2f GiB kept for "
                  "activations",
                  double(total_bytes) / gib, o.gpu_memory_utilization, double(budget) / gib, double(used) / gib,
                  double(activations) / gib);
    if (kv_bytes < per_block * per_seq)
      return make_error("not enough GPU memory for the KV cache: ", numbers, ", leaving ",
                        double(std::max<int64_t>(kv_bytes, 0)) / gib, " GiB, less than one ", so->max_model_len,
                        "-token sequence needs (", double(per_block * per_seq) / gib,
                        " GiB); raise --gpu-memory-utilization or lower --max-model-len");
    const int64_t blocks = std::min<int64_t>({kv_bytes / per_block, int64_t{std::max(o.max_num_seqs, 1)} * per_seq,
                                              std::numeric_limits<int32_t>::max()});
    llm_options sized = o;
    sized.kv_cache_blocks = blocks;
    so = make_scheduler_options(cfg, sized);
    if (!so) return so.error();
    char line[700];
    std::snprintf(line, sizeof line, "KV cache: %lld blocks of %d = %lld tokens (%.2f GiB, %s); %s",
                  (long long)blocks, o.block_size, (long long)(blocks * o.block_size),
                  double(blocks * per_block) / gib, std::string(kernels::to_string(model.backend().compute_type())).c_str(),
                  numbers);
    if (note != nullptr) *note = line;
  }
  return so;
}

expected<std::unique_ptr<llm>> llm::create(llama_model& model, const tokenizer& tok, const llm_options& o,
                                           block_hash_fn hash) {
  std::string note;
  auto so = size_kv_cache(model, o, &note);
  if (!so) return so.error();
  if (!note.empty()) std::fprintf(stderr, "%s\n", note.c_str());
  std::unique_ptr<llm> engine(new llm(model, tok, *so, std::move(hash)));
  if (std::string err = model.backend().last_error(); !err.empty())
    return make_error("the GPU failed while allocating the KV cache of ", so->num_blocks, " blocks: ", err,
                      note.empty() ? "" : " (", note, note.empty() ? "" : ")");
  // Per-shape choices of the backend's products (CUDA: cuBLASLt algorithms) at start-up, not in the
  // first steps; after the KV cache, whose size counted these activations.
  model.prepare_products(so->max_num_batched_tokens, so->max_num_seqs);
  if (std::string err = model.backend().last_error(); !err.empty())
    return make_error("the GPU failed while preparing the matrix products: ", err);
  engine->kv_note_ = std::move(note);
  engine->steps_in_flight_ = o.steps_in_flight;
  return engine;
}

void llm::finish(request_id id, finish_reason reason, std::string why) {
  const request_status status = reason == finish_reason::error ? request_status::finished_error
                                                               : request_status::finished_aborted;
  sched_->finish_request(id, status, std::move(why));
  texts_.remove(id);
}

void llm::add_requests(std::span<const llm_request> requests, std::vector<llm_output>& outputs, places& where) {
  const auto& cfg = model_.config();
  const std::vector<int32_t> eos(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end());
  for (size_t i = 0; i < requests.size(); ++i) {
    const llm_request& in = requests[i];
    llm_output& out = outputs[i];
    if (in.prompt_ids.empty()) {
      auto ids = tok_.encode(in.prompt, in.add_special_tokens);
      if (!ids) {
        out.error = "cannot tokenize the prompt: " + ids.error().message;
        continue;
      }
      out.prompt_ids = std::move(*ids);
    } else {
      out.prompt_ids = in.prompt_ids;
    }
    auto bad = std::find_if(out.prompt_ids.begin(), out.prompt_ids.end(),
                            [&](int32_t t) { return t < 0 || t >= cfg.vocab_size; });
    if (bad != out.prompt_ids.end()) {
      out.error = make_error("prompt token id ", *bad, " is outside the vocabulary (size ", cfg.vocab_size, ")").message;
      continue;
    }
    if (auto ok = validate(in.params.sampling, cfg.vocab_size); !ok) {
      out.error = ok.error().message;
      continue;
    }
    if (in.params.n < 1 || in.params.n > max_samples) {
      out.error = make_error("n must be within [1, ", max_samples, "], got ", in.params.n).message;
      continue;
    }
    // n samples: child requests with the same prompt, admitted one after another, so that the
    // first one's prompt blocks are shared by the others through the prefix cache.
    std::vector<request_id> children;
    for (int32_t c = 0; c < in.params.n; ++c) {
      const request_params p = child_params(in.params, c);
      const request_id id = next_id_++;
      auto ok = sched_->add_request(request(id, out.prompt_ids, p, eos));
      if (!ok) {
        out.error = ok.error().message;
        for (request_id child : children) {
          finish(child, finish_reason::abort, "a sibling sample was rejected");
          where.erase(child);
        }
        break;
      }
      children.push_back(id);
      texts_.add(id, p.stop);
      where[id] = {i, size_t(c)};
    }
    if (out.error.empty()) out.samples.resize(size_t(in.params.n));
  }
}

// One step's results: prompt logprobs, then the scheduler's update (tokens, stops, finishes), then
// text and stop strings.
void llm::process(const schedule_output& step, expected<step_result>& result, std::vector<llm_output>& outputs,
                  const places& where) {
  if (!result) {  // the model rejected the step: its live requests fail, the others go on
    for (const request_output& r : sched_->fail_step(step, result.error().message)) {
      llm_sample& out = outputs[where.at(r.id).input].samples[where.at(r.id).sample];
      out.finish_reason = "error";
      out.stop_reason = r.stop_reason;
      texts_.remove(r.id);
    }
    return;
  }
  if (!step.empty()) {  // (an empty one only tells the runner of finished requests)
    ++steps_;
    if (observer_) observer_(step);
  }
  tokens_ += uint64_t(step.total_num_scheduled_tokens);
  std::unordered_map<request_id, size_t> entry;
  for (size_t i = 0; i < step.scheduled.size(); ++i) {
    entry[step.scheduled[i].id] = i;
    if (sched_->find(step.scheduled[i].id) == nullptr) continue;  // ended after the step was planned
    const place at = where.at(step.scheduled[i].id);
    auto& scored = result->prompt_logprobs[i];
    if (at.sample == 0) outputs[at.input].prompt_logprobs.insert(outputs[at.input].prompt_logprobs.end(),
                                                                 scored.begin(), scored.end());
  }
  for (const request_output& r : sched_->update_from_output(step, result->sampled)) {
    const place at = where.at(r.id);
    llm_sample& out = outputs[at.input].samples[at.sample];
    out.output_ids.insert(out.output_ids.end(), r.new_token_ids.begin(), r.new_token_ids.end());
    if (!r.new_token_ids.empty()) {
      const auto& lp = result->logprobs[entry.at(r.id)];
      out.logprobs.insert(out.logprobs.end(), lp.begin(), lp.end());
    }
    auto d = texts_.push(r.id, r.new_token_ids, r.finished);
    out.text += d.text;
    if (d.stopped) {
      out.finish_reason = "stop";
      out.stop_reason = d.stop_string;
      if (!r.finished) sched_->finish_request(r.id, request_status::finished_stopped, d.stop_string);
    } else if (r.finished) {
      out.finish_reason = std::string(to_string(r.reason));
      out.stop_reason = r.stop_reason;
    }
  }
}

std::vector<llm_output> llm::generate(std::span<const llm_request> requests) {
  places where;
  std::vector<llm_output> outputs(requests.size());
  add_requests(requests, outputs, where);

  // Up to steps_in_flight steps are planned ahead. With more than one, the runner works on its own
  // thread: while it runs step N, this thread processes step N-1's outputs and plans step N+1.
  struct flight {
    std::unique_ptr<schedule_output> step;
    std::future<expected<step_result>> pending;  // when the runner thread has it
    std::optional<expected<step_result>> done;   // when run here
  };
  std::deque<flight> flights;
  // Declared after `flights`: if a step throws, the thread finishes what it was given (and joins)
  // before the steps it refers to are freed.
  std::optional<runner_thread> worker;
  if (steps_in_flight_ > 1) worker.emplace(runner_);
  const auto launch = [&](schedule_output step) {
    flight f;
    f.step = std::make_unique<schedule_output>(std::move(step));
    if (worker) f.pending = worker->submit(*f.step);
    else f.done = runner_.execute(*f.step);
    flights.push_back(std::move(f));
  };
  for (;;) {
    while (flights.size() < size_t(steps_in_flight_) && sched_->has_unfinished()) {
      schedule_output step = sched_->schedule();
      if (!step.empty()) {
        launch(std::move(step));
        continue;
      }
      if (flights.empty()) {  // cannot happen while a request alone always fits; never spin
        for (auto& [id, at] : where)
          if (sched_->find(id) != nullptr) {
            outputs[at.input].samples[at.sample].finish_reason = "error";
            outputs[at.input].samples[at.sample].stop_reason = "the scheduler could not place the request";
            finish(id, finish_reason::error, "unschedulable");
          }
      } else if (!step.finished_request_ids.empty()) {
        launch(std::move(step));  // nothing to compute, but the runner must forget those requests
      }
      break;  // the rest waits for the results in flight
    }
    if (flights.empty()) break;
    flight f = std::move(flights.front());
    flights.pop_front();
    expected<step_result> result = f.done ? std::move(*f.done) : f.pending.get();
    process(*f.step, result, outputs, where);
  }
  return outputs;
}

}  // namespace troupe::engine
