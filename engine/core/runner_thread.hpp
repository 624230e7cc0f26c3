// Runs a model runner's steps on a thread of its own, in the order given, so that the thread that
// plans steps can plan the next one and process the last one's outputs meanwhile (engine::llm); a
// step that comes while the one before still runs on the device is launched before that one
// finishes (model_runner::launch / finish), so the device need not wait for the host between them.
#pragma once

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/core/model_runner.hpp"

namespace troupe::engine {

class runner_thread {
 public:
  explicit runner_thread(model_runner& runner);
  /// Runs what was submitted, then joins.
  ~runner_thread();
  runner_thread(const runner_thread&) = delete;
  runner_thread& operator=(const runner_thread&) = delete;

  /// Queues a step behind those submitted before. `step` must stay alive and unchanged until the
  /// result is taken; an exception thrown by the runner (a device error) comes out of the future.
  std::future<expected<step_result>> submit(const schedule_output& step);

 private:
  struct job {
    const schedule_output* step = nullptr;
    std::promise<expected<step_result>> result;
  };
  void loop();
  bool launch(job& j);
  void finish(job& j);

  model_runner& runner_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<job> jobs_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace troupe::engine
