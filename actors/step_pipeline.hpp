// The executor actor's steps on its model runner: launched in the order received, the next one
// before the one before finishes where allowed, and each answered through its response promise.
#pragma once

#include <cstdint>
#include <deque>

#include "actors/messages.hpp"
#include "engine/core/model_runner.hpp"

namespace troupe::actors {

/// Steps launched on a model runner and not yet answered: at most one between messages (two
/// inside take()). Outcomes go out in the order the steps came. An exception from the runner (a
/// device error) passes through and leaves the promises of the steps it held unanswered: the
/// executor dies with it and its monitor handles them.
class step_pipeline {
 public:
  using promise = caf::typed_response_promise<step_outcome>;

  step_pipeline(engine::model_runner& runner, bool overlap) : runner_(runner), overlap_(overlap) {}

  /// Launches `plan`'s step. With a step launched and unfinished, that one is finished first when
  /// its results are ready, overlap is off or the new step may not start before it (penalties);
  /// otherwise after the new one is launched, so the device goes straight from one to the next.
  /// A launch error answers the step as failed (after every older one) and leaves nothing launched.
  void take(step_plan& plan, promise rp);
  /// Whether a launched step awaits its finish.
  bool busy() const { return !steps_.empty(); }
  bool overlap() const { return overlap_; }
  /// Whether finishing the oldest step would not wait for the device.
  bool oldest_ready() { return runner_.oldest_ready(); }
  /// Waits for the oldest launched step and answers it.
  void finish_oldest();

 private:
  struct step {
    engine::schedule_output output;  // the runner reads it until the step finishes
    uint64_t generation = 0;
    promise rp;
    int64_t launched_ns = 0;
  };
  // A step's exec_ns: from its launch, or from the finish of the step before when that came later,
  // to now. Overlapped steps are so not counted twice: the sum is the time the executor was busy.
  int64_t busy_ns(const step& s);

  engine::model_runner& runner_;
  bool overlap_;
  std::deque<step> steps_;  // a deque: launched steps' outputs stay where they are
  int64_t last_finish_ns_ = 0;
};

}  // namespace troupe::actors
