// What every actor of one runtime reads: options, the model's settings, the tokenizer, admission
// counters, metrics and the tokenizer pool. Owned by the runtime; it outlives all of its actors.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/runtime.hpp"
#include "engine/core/scheduler.hpp"
#include "engine/tokenizer/tokenizer.hpp"

namespace troupe::actors {

struct runtime_shared {
  runtime_options options;
  config::model_config model;
  config::tokenizer_settings tokenizer_settings;
  engine::tokenizer tok;
  /// The engine limits every executor's KV cache follows. On a GPU with kv_cache_blocks 0 the first
  /// executor to load the model sizes the cache from the card's free memory (engine::size_kv_cache)
  /// and sets kv_sized; restarted executors keep that size.
  engine::scheduler_options scheduler;
  bool kv_sized = false;
  int64_t max_len = 0;                  ///< prompt + output tokens at most
  int64_t max_queued_prompt_tokens = 0;
  std::vector<int32_t> eos;
  metrics_registry metrics;

  /// Samples admitted (or being admitted) that have not been scheduled yet: bounded by max_waiting.
  std::atomic<int64_t> queued{0};
  std::atomic<bool> accepting{false};
  std::atomic<bool> failed{false};  ///< the executor could not be (re)started

  /// The tokenizer pool and each worker's outstanding requests (the least loaded one is picked).
  std::vector<tokenizer_actor> tokenizers;
  std::unique_ptr<std::atomic<int32_t>[]> tokenizer_load;
  scheduler_actor scheduler_handle;

  /// Live request actors (drain waits for zero) and live actors of any kind (shutdown waits).
  void request_started();
  void request_ended();
  /// Waits until no request is live, at most until `deadline`; true when none is.
  bool wait_requests(std::chrono::steady_clock::time_point deadline);
  int64_t live_requests() const;
  void actor_started();
  void actor_ended();
  void wait_actors();

  /// Picks the least loaded tokenizer actor and counts the request against it.
  size_t pick_tokenizer();

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t live_requests_ = 0;
  int64_t live_actors_ = 0;
};

/// Steady-clock nanoseconds (the time base of every latency).
int64_t now_ns();

}  // namespace troupe::actors
