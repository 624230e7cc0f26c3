// The runtime's counters, gauges, latency histograms and mailbox depths, shared by every actor.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/runtime.hpp"

namespace troupe::actors {

/// What the scheduler publishes after each event (engine state, read at one moment).
struct scheduler_gauges {
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  uint64_t prefix_cache_queries = 0;
  uint64_t prefix_cache_hits = 0;
  uint64_t preemptions = 0;
};

/// Thread-safe: actors record, metrics() reads a consistent snapshot under one lock.
class metrics_registry {
 public:
  metrics_registry();

  void observe_ttft(double seconds);
  void observe_itl(double seconds);
  void observe_e2e(double seconds);
  void observe_queue(double seconds);
  void finished(const std::string& reason);
  void rejected();
  void add_prompt_tokens(uint64_t n);
  void add_generation_tokens(uint64_t n);
  void set_gauges(const scheduler_gauges& g);

  /// A mailbox-depth slot; register every name before the actors start (the map is then fixed).
  std::atomic<int64_t>* add_mailbox(const std::string& name);
  /// Requests submitted but not yet in the engine scheduler (being tokenised or admitted).
  std::atomic<int64_t>& admitting() { return admitting_; }

  runtime_metrics snapshot() const;

 private:
  mutable std::mutex mu_;
  runtime_metrics m_;
  std::atomic<int64_t> admitting_{0};
  std::map<std::string, std::unique_ptr<std::atomic<int64_t>>> mailboxes_;
};

/// Adds one observation to a histogram (per-bucket counts, the last bucket is +Inf).
void observe(histogram& h, double value);
/// A histogram with these upper bounds and empty buckets.
histogram make_histogram(std::vector<double> bounds);

}  // namespace troupe::actors
