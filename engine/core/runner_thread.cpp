// The runner's thread: takes queued steps one at a time and fulfils their promises.
#include "engine/core/runner_thread.hpp"

namespace troupe::engine {

runner_thread::runner_thread(model_runner& runner) : runner_(runner), thread_([this] { loop(); }) {}

runner_thread::~runner_thread() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

std::future<expected<step_result>> runner_thread::submit(const schedule_output& step) {
  job j{&step, {}};
  auto f = j.result.get_future();
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(j));
  }
  cv_.notify_one();
  return f;
}

void runner_thread::loop() {
  for (;;) {
    job j;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and everything submitted has run
      j = std::move(jobs_.front());
      jobs_.pop_front();
    }
    try {
      j.result.set_value(runner_.execute(*j.step));
    } catch (...) {
      j.result.set_exception(std::current_exception());
    }
  }
}

}  // namespace troupe::engine
