// Continuous batching: which requests run each step and with how many tokens, under a token budget,
// a sequence cap and the KV blocks available; preemption by recompute; stop checks on new tokens.
#pragma once

#include <cstdint>
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
};

/// The engine's scheduler. Not thread-safe: one owner calls it (the scheduler actor).
///
/// Each step serves running requests first, decodes before continuing prefills, in (priority,
/// arrival) order, then admits waiting requests in (priority, arrival) order while the token
/// budget, the sequence cap and the free blocks allow; a prompt longer than the budget left is
/// prefilled in chunks over several steps. When a running request needs a block and none is free,
/// the running request of lowest priority and latest arrival is preempted: its blocks are freed and
/// it waits again, ahead of later arrivals of its priority, to be recomputed with the tokens it has
/// generated. Requests are admitted into a step only when no request was preempted in it.
/// schedule() and update_from_output() alternate: one step is in flight at a time.
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

  /// Plans the next step (empty when nothing can run).
  schedule_output schedule();
  /// Applies a step's results: sampled[i] is the token sampled for output.scheduled[i] (ignored
  /// where that entry does not sample). Appends tokens, checks EOS, stop token ids, max_tokens and
  /// the length limit, and frees finished requests. Returns one entry per request that sampled.
  std::vector<request_output> update_from_output(const schedule_output& output,
                                                 std::span<const int32_t> sampled);

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
  bool schedule_running(request& r, int32_t& budget, schedule_output& out);
  void preempt(request& victim, int32_t& budget, schedule_output& out);
  void admit_waiting(int32_t& budget, schedule_output& out);
  void add_to_step(request& r, int32_t num_tokens, bool is_new, std::vector<int32_t> new_blocks,
                   schedule_output& out);
  void remove(request& r);

  scheduler_options options_;
  int64_t max_len_ = 0;
  kv_cache_manager kv_;
  std::unordered_map<request_id, std::unique_ptr<request>> requests_;
  std::set<request*, by_priority> waiting_;
  std::vector<request*> running_;  // sorted by (priority, arrival)
  std::vector<request_id> finished_since_step_;
  uint64_t next_arrival_ = 0;
  scheduler_stats stats_;
};

}  // namespace troupe::engine
