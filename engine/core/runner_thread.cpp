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

// Launches j's step; false (and j's result set) when that failed.
bool runner_thread::launch(job& j) {
  try {
    if (auto ok = runner_.launch(*j.step); !ok) {
      j.result.set_value(ok.error());
      return false;
    }
    return true;
  } catch (...) {
    j.result.set_exception(std::current_exception());
    return false;
  }
}

void runner_thread::finish(job& j) {
  try {
    j.result.set_value(runner_.finish());
  } catch (...) {
    j.result.set_exception(std::current_exception());
  }
}

void runner_thread::loop() {
  static const bool overlap = overlap_enabled();
  for (;;) {
    job j;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and everything submitted has run
      j = std::move(jobs_.front());
      jobs_.pop_front();
    }
    if (!launch(j)) continue;
    // j runs on the device. If the next step comes before j's samples are ready, and may start
    // without them on the host, it is launched first (its inputs take them on the device), so the
    // device goes from one step to the next without waiting for the host.
    for (;;) {
      std::optional<job> next;
      {
        std::unique_lock lock(mu_);
        while (!stop_ && jobs_.empty() && !runner_.oldest_ready()) cv_.wait_for(lock, launch_poll_interval);
        if (overlap && !jobs_.empty() && runner_.may_launch_before_finish(*jobs_.front().step)) {
          next = std::move(jobs_.front());
          jobs_.pop_front();
        }
      }
      const bool next_launched = next && launch(*next);
      finish(j);
      if (!next_launched) break;
      j = std::move(*next);
    }
  }
}

}  // namespace troupe::engine
