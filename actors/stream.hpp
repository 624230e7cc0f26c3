// The consumer's side of a request: a lock-free queue of events the request actor fills.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include <blockingconcurrentqueue.h>

#include "actors/runtime.hpp"

namespace troupe::actors {

/// A request_stream over a moodycamel blocking queue: the request actor pushes events, one
/// consumer takes them; cancel() may come from any thread.
class stream_impl final : public request_stream {
 public:
  /// `cancel` sends the cancellation to the request actor (it checks that the runtime still runs).
  stream_impl(int32_t samples, std::function<void()> cancel);

  std::optional<stream_event> next(std::chrono::milliseconds timeout) override;
  bool done() const override { return left_.load() == 0; }
  void cancel() override;
  std::vector<int32_t> prompt_ids() const override;
  std::vector<engine::logprobs_entry> prompt_logprobs() const override;

  // The request actor's side.
  /// Events keep their order: one producer token, used by the request actor on whichever worker
  /// thread runs it (moodycamel orders items per producer only).
  void push(stream_event ev) { queue_.enqueue(producer_, std::move(ev)); }
  void set_prompt_ids(std::vector<int32_t> ids);
  void add_prompt_logprobs(const std::vector<engine::logprobs_entry>& lp);
  void set_cancel(std::function<void()> cancel);

 private:
  moodycamel::BlockingConcurrentQueue<stream_event> queue_;
  moodycamel::ProducerToken producer_{queue_};
  std::atomic<int32_t> left_;  // samples whose final event has not been taken
  mutable std::mutex mu_;
  std::vector<int32_t> prompt_ids_;
  std::vector<engine::logprobs_entry> prompt_logprobs_;
  std::function<void()> cancel_;
  bool cancelled_ = false;
};

}  // namespace troupe::actors
