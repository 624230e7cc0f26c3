// Counting live requests and actors, picking a tokenizer.
#include "actors/shared.hpp"

#include <chrono>

namespace troupe::actors {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void runtime_shared::request_started() {
  std::lock_guard lock(mu_);
  ++live_requests_;
}

void runtime_shared::request_ended() {
  std::lock_guard lock(mu_);
  --live_requests_;
  cv_.notify_all();
}

bool runtime_shared::wait_requests(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  return cv_.wait_until(lock, deadline, [&] { return live_requests_ == 0; });
}

int64_t runtime_shared::live_requests() const {
  std::lock_guard lock(mu_);
  return live_requests_;
}

void runtime_shared::actor_started() {
  std::lock_guard lock(mu_);
  ++live_actors_;
}

void runtime_shared::actor_ended() {
  std::lock_guard lock(mu_);
  --live_actors_;
  cv_.notify_all();
}

void runtime_shared::wait_actors() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return live_actors_ == 0; });
}

size_t runtime_shared::pick_tokenizer() {
  size_t best = 0;
  for (size_t i = 1; i < tokenizers.size(); ++i)
    if (tokenizer_load[i].load() < tokenizer_load[best].load()) best = i;
  tokenizer_load[best].fetch_add(1);
  return best;
}

}  // namespace troupe::actors
