// Metrics: counters and histograms under one mutex, mailbox depths as atomics.
#include "actors/metrics.hpp"

#include <algorithm>

namespace troupe::actors {

histogram make_histogram(std::vector<double> bounds) {
  histogram h;
  h.bounds = std::move(bounds);
  h.counts.assign(h.bounds.size() + 1, 0);
  return h;
}

void observe(histogram& h, double value) {
  const auto at = std::lower_bound(h.bounds.begin(), h.bounds.end(), value) - h.bounds.begin();
  ++h.counts[size_t(at)];
  h.sum += value;
  ++h.count;
}

metrics_registry::metrics_registry() {
  const std::vector<double> latency = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  const std::vector<double> per_token = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
  m_.time_to_first_token = make_histogram(latency);
  m_.e2e_latency = make_histogram(latency);
  m_.queue_time = make_histogram(latency);
  m_.inter_token_latency = make_histogram(per_token);
}

void metrics_registry::observe_ttft(double s) {
  std::lock_guard lock(mu_);
  observe(m_.time_to_first_token, s);
}
void metrics_registry::observe_itl(double s) {
  std::lock_guard lock(mu_);
  observe(m_.inter_token_latency, s);
}
void metrics_registry::observe_e2e(double s) {
  std::lock_guard lock(mu_);
  observe(m_.e2e_latency, s);
}
void metrics_registry::observe_queue(double s) {
  std::lock_guard lock(mu_);
  observe(m_.queue_time, s);
}
void metrics_registry::finished(const std::string& reason) {
  std::lock_guard lock(mu_);
  ++m_.requests_finished[reason];
}
void metrics_registry::rejected() {
  std::lock_guard lock(mu_);
  ++m_.requests_rejected;
}
void metrics_registry::add_prompt_tokens(uint64_t n) {
  std::lock_guard lock(mu_);
  m_.prompt_tokens += n;
}
void metrics_registry::add_generation_tokens(uint64_t n) {
  std::lock_guard lock(mu_);
  m_.generation_tokens += n;
}
void metrics_registry::set_gauges(const scheduler_gauges& g) {
  std::lock_guard lock(mu_);
  m_.requests_running = g.running;
  m_.requests_waiting = g.waiting;
  m_.kv_blocks_used = g.kv_blocks_used;
  m_.kv_blocks_total = g.kv_blocks_total;
  m_.prefix_cache_queries = g.prefix_cache_queries;
  m_.prefix_cache_hits = g.prefix_cache_hits;
  m_.preemptions = g.preemptions;
}

std::atomic<int64_t>* metrics_registry::add_mailbox(const std::string& name) {
  std::lock_guard lock(mu_);
  auto& slot = mailboxes_[name];
  if (!slot) slot = std::make_unique<std::atomic<int64_t>>(0);
  return slot.get();
}

runtime_metrics metrics_registry::snapshot() const {
  std::lock_guard lock(mu_);
  runtime_metrics out = m_;
  out.requests_waiting += admitting_.load();
  for (const auto& [name, depth] : mailboxes_) out.mailbox_depth[name] = depth->load();
  return out;
}

}  // namespace troupe::actors
