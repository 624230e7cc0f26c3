// Continuous batching: which requests run each step and with how many tokens, under a token budget,
// a sequence cap and the KV blocks available; preemption by recompute; stop checks on new tokens.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/error.hpp"
#include "engine/core/kv_cache_manager.hpp"
#include "engine/core/request.hpp"
#include "engine/core/schedule_output.hpp"

namespace troupe::engine {

/// Limits of the scheduler and the size of the KV cache it manages.
struct scheduler_options {
  int32_t num_blocks = 0;                ///< KV cache blocks
  int32_t block_size = 16;               ///< tokens per block
  bool enable_prefix_caching = true;
  int32_t max_num_seqs = 256;            ///< running requests at most
  int32_t max_num_batched_tokens = 2048; ///< tokens per step at most
  int64_t max_model_len = 2048;          ///< prompt plus output tokens at most
  /// Admission keeps this fraction of the running requests' room to grow (up to max_tokens) free in
  /// the KV cache, so that requests admitted now need not be preempted (and recomputed) later. It
  /// starts here, falls linearly to admission_reserve_floor over admission_reserve_decay_steps
  /// steps without a preemption (outputs usually end before max_tokens), and rises by 0.1 (at most
  /// to 1) with each step that preempts. 0 admits whatever fits now (vLLM's policy); a floor above
  /// admission_reserve counts as admission_reserve. A request that cannot end early (ignore_eos, no
  /// stop token ids or strings) has all of its growth reserved whatever the fraction: it will reach
  /// max_tokens, so anything less only buys a preemption and its recomputation later (unless the
  /// reserve is 0).
  double admission_reserve = 0.7;
  double admission_reserve_floor = 0.1;
  int32_t admission_reserve_decay_steps = 600;
};

/// Checks that every limit is positive.
expected<void> validate(const scheduler_options& o);

/// What a step did for one request.
struct request_output {
  request_id id = 0;
  std::vector<int32_t> new_token_ids;  ///< the token appended this step (none for a stop token)
  bool finished = false;
  finish_reason reason = finish_reason::none;
  std::string stop_reason;             ///< the stop token id, or why it was aborted or failed
};

/// Counters since construction.
struct scheduler_stats {
  uint64_t steps = 0;
  uint64_t preemptions = 0;
  uint64_t finished = 0;
  double admission_reserve = 0;  ///< the fraction admission keeps now (scheduler_options)
};

/// The engine's scheduler. Not thread-safe: one owner calls it (the scheduler actor).
///
/// Each step serves running requests first, decodes before continuing prefills, in (priority,
/// arrival) order, then admits waiting requests in (priority, arrival) order while the token
/// budget, the sequence cap and the free blocks allow; a prompt longer than the budget left is
/// prefilled in chunks over several steps. When a running request needs a block and none is free,
/// the running request of lowest priority and latest arrival is preempted: its blocks are freed and
/// it waits again, ahead of later arrivals of its priority, to be recomputed with the tokens it has
/// generated. Requests are admitted into a step only when no request was preempted in it, and only
/// while the blocks left free cover a fraction of what the running requests may still grow
/// (scheduler_options::admission_reserve), which makes preemption rare.
///
/// Steps in flight (asynchronous scheduling): schedule() may be called again before the results of
/// earlier steps are back. Planning a step advances each scheduled request's num_computed_tokens and
/// counts, for an entry that samples, one output placeholder, so the next step can compute that
/// token (the model runner supplies its id) while this one runs. Every non-empty step must then be
/// passed to update_from_output once, in the order planned (the caller bounds how many are in
/// flight). A request never has more placeholders than it may still produce (max_tokens and the
/// length limit count them); once it finishes, what later steps in flight computed for it is ignored.
/// A preempted request keeps the results of its steps in flight (its sampler drew them) and is
/// re-admitted only once they are all back, with every token it has.
///
/// Blocks freed while steps are in flight (finish, abort, preemption) may be handed to a request in
/// the next step planned. That is safe because the executor runs steps in the order planned: a step
/// already in flight writes into a freed block before any later step that reuses it does, and no
/// attention of a later step reads what the earlier one wrote there for the old owner.
class scheduler {
 public:
  explicit scheduler(const scheduler_options& options, block_hash_fn hash = xxh3_block_hash);

  /// Queues a request. Errors (and drops it) when its id is in use, its prompt is empty, longer
  /// than max_model_len allows or larger than the whole cache, or its parameters are invalid.
  expected<void> add_request(request r);
  /// Finishes a request as aborted, freeing all its blocks at once; false when it is unknown.
  bool abort_request(request_id id, std::string reason = "aborted");
  /// Finishes a request with a finished status (e.g. finished_stopped when a stop string matched,
  /// finished_error) and frees its blocks; false when it is unknown.
  bool finish_request(request_id id, request_status status, std::string reason);

  /// Plans the next step (empty when nothing can run now; with steps in flight, requests may be
  /// waiting for their results). An empty step may still carry finished_request_ids for the runner.
  schedule_output schedule();
  /// Applies a step's results: sampled[i] is the token sampled for output.scheduled[i] (ignored
  /// where that entry does not sample). Replaces the placeholders with the tokens, checks EOS, stop
  /// token ids, max_tokens and the length limit, and frees finished requests. Returns one entry per
  /// live request that sampled. Steps come back in the order planned; for a step that failed,
  /// finish its requests first and pass -1s.
  std::vector<request_output> update_from_output(const schedule_output& output,
                                                 std::span<const int32_t> sampled);
  /// In place of update_from_output for a step the runner could not run (nothing of it was
  /// computed; the model rejected its input): finishes its live requests with finished_error and
  /// `why`, and also those a later step in flight admitted from a prefix-cache hit (they may read
  /// blocks this step was to write), then forgets the whole prefix cache (it may name such blocks).
  /// Returns one finished entry per request it ended.
  std::vector<request_output> fail_step(const schedule_output& output, const std::string& why);
  /// Non-empty steps planned whose results are not back yet.
  size_t num_steps_in_flight() const { return in_flight_.size(); }

  bool has_unfinished() const { return !requests_.empty(); }
  size_t num_waiting() const { return waiting_.size(); }
  size_t num_running() const { return running_.size(); }
  /// A live (not finished) request, or null.
  const request* find(request_id id) const;
  const kv_cache_manager& kv() const { return kv_; }
  const scheduler_stats& stats() const { return stats_; }
  const scheduler_options& options() const { return options_; }
  /// Prompt plus output tokens at most: max_model_len, or what the whole cache can compute.
  int64_t max_len() const { return max_len_; }

 private:
  struct by_priority {
    bool operator()(const request* a, const request* b) const {
      return a->priority() != b->priority() ? a->priority() < b->priority() : a->arrival < b->arrival;
    }
  };
  struct step_record {
    uint64_t step = 0;
    std::vector<request_id> hit_admissions;  // admitted in it from a prefix-cache hit
  };
  bool may_sample(const request& r) const;
  bool schedule_running(request& r, int32_t& budget, schedule_output& out);
  void preempt(request& victim, int32_t& budget, schedule_output& out);
  void admit_waiting(int32_t& budget, schedule_output& out);
  int64_t final_length(const request& r) const;
  /// Whether r can only finish at max_tokens or the length limit: admission then reserves all its growth.
  static bool runs_to_max_tokens(const request& r);
  void adapt_reserve(bool preempted);
  void add_to_step(request& r, int32_t num_tokens, bool is_new, std::vector<int32_t> new_blocks,
                   schedule_output& out);
  step_record take_in_flight(const schedule_output& output);
  void remove(request& r);

  scheduler_options options_;
  int64_t max_len_ = 0;
  kv_cache_manager kv_;
  std::unordered_map<request_id, std::unique_ptr<request>> requests_;
  std::set<request*, by_priority> waiting_;
  std::vector<request*> running_;  // sorted by (priority, arrival)
  std::vector<request_id> finished_since_step_;
  std::deque<step_record> in_flight_;  // steps planned, not yet updated, in order
  uint64_t next_arrival_ = 0;
  double reserve_ = 0;  // the admission reserve now
  scheduler_stats stats_;
};

}  // namespace troupe::engine
