// The executor actor's launched steps: launch, finish and answer them in order.
#include "actors/step_pipeline.hpp"

#include <algorithm>
#include <utility>

#include "actors/shared.hpp"

namespace troupe::actors {

int64_t step_pipeline::busy_ns(const step& s) {
  const int64_t end = now_ns();
  const int64_t begin = std::max(s.launched_ns, last_finish_ns_);
  last_finish_ns_ = end;
  return end - begin;
}

void step_pipeline::take(step_plan& plan, promise rp) {
  if (busy() && (!overlap_ || runner_.oldest_ready() || !runner_.may_launch_before_finish(plan.step)))
    finish_oldest();
  steps_.push_back({std::move(plan.step), plan.generation, std::move(rp), now_ns()});
  auto launched = runner_.launch(steps_.back().output);  // a failing device throws: the actor dies
  if (launched) {
    if (steps_.size() > 1) finish_oldest();
    return;
  }
  step failed = std::move(steps_.back());
  steps_.pop_back();
  while (busy()) finish_oldest();  // outcomes go out in order
  step_outcome out;
  out.generation = failed.generation;
  out.step = failed.output.step;
  out.ok = false;
  out.error = launched.error().message;
  out.exec_ns = busy_ns(failed);
  failed.rp.deliver(std::move(out));
}

void step_pipeline::finish_oldest() {
  auto result = runner_.finish();  // a failing device throws: the actor dies
  step s = std::move(steps_.front());
  steps_.pop_front();
  step_outcome out;
  out.generation = s.generation;
  out.step = s.output.step;
  out.exec_ns = busy_ns(s);
  if (result) {
    out.result = std::move(*result);
  } else {
    out.ok = false;
    out.error = result.error().message;
  }
  s.rp.deliver(std::move(out));
}

}  // namespace troupe::actors
