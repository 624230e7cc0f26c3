// request_stream over a blocking concurrent queue.
#include "actors/stream.hpp"

namespace troupe::actors {

stream_impl::stream_impl(int32_t samples, std::function<void()> cancel)
    : left_(samples), cancel_(std::move(cancel)) {}

std::optional<stream_event> stream_impl::next(std::chrono::milliseconds timeout) {
  if (left_.load() == 0) return std::nullopt;
  stream_event ev;
  if (!queue_.wait_dequeue_timed(ev, std::chrono::duration_cast<std::chrono::microseconds>(timeout)))
    return std::nullopt;
  if (ev.finished) left_.fetch_sub(1);
  return ev;
}

void stream_impl::cancel() {
  std::function<void()> send;
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return;
    cancelled_ = true;
    send = cancel_;
  }
  if (send) send();
}

void stream_impl::set_cancel(std::function<void()> cancel) {
  std::lock_guard lock(mu_);
  cancel_ = std::move(cancel);
}

std::vector<int32_t> stream_impl::prompt_ids() const {
  std::lock_guard lock(mu_);
  return prompt_ids_;
}

std::vector<engine::logprobs_entry> stream_impl::prompt_logprobs() const {
  std::lock_guard lock(mu_);
  return prompt_logprobs_;
}

void stream_impl::set_prompt_ids(std::vector<int32_t> ids) {
  std::lock_guard lock(mu_);
  prompt_ids_ = std::move(ids);
}

void stream_impl::add_prompt_logprobs(const std::vector<engine::logprobs_entry>& lp) {
  std::lock_guard lock(mu_);
  prompt_logprobs_.insert(prompt_logprobs_.end(), lp.begin(), lp.end());
}

}  // namespace troupe::actors
