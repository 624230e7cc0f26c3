// Executor actor: backend + llama_model + model_runner behind init and execute messages; step N + 1
// is launched before step N finishes (actors/step_pipeline).
#include "actors/executor_actor.hpp"

#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "actors/shared.hpp"
#include "actors/step_pipeline.hpp"
#include "engine/core/llm.hpp"
#include "engine/core/model_runner.hpp"
#include "engine/model/llama_model.hpp"

namespace troupe::actors {

namespace {

struct executor_state {
  runtime_shared* shared = nullptr;
  std::atomic<int64_t>* depth = nullptr;
  std::unique_ptr<kernels::backend> backend;
  std::unique_ptr<engine::llama_model> model;
  std::unique_ptr<engine::model_runner> runner;
  bool overlap = true;
  std::unique_ptr<step_pipeline> steps;  // last: it refers to the runner
};

using pointer = executor_actor::stateful_pointer<executor_state>;

status_reply load(executor_state& st) {
  const runtime_options& o = st.shared->options;
  st.backend = o.backend_factory ? o.backend_factory() : kernels::make_cpu_backend(o.cpu_threads);
  if (!st.backend) return {false, int(errc::internal), "the backend factory returned no backend"};
  auto model = engine::llama_model::load(o.model_dir, *st.backend);
  if (!model) return {false, int(errc::internal), model.error().message};
  st.model = std::move(*model);
  runtime_shared& sh = *st.shared;
  std::string note;
  if (!sh.kv_sized) {  // the first load: the card's free memory decides the KV cache on a GPU
    auto sized = engine::size_kv_cache(*st.model, o.engine, &note);
    if (!sized) return {false, int(errc::resource_exhausted), sized.error().message};
    sh.scheduler = *sized;
    sh.kv_sized = true;
    if (!note.empty()) std::fprintf(stderr, "troupe: %s\n", note.c_str());
  }
  const auto& so = sh.scheduler;
  st.runner = std::make_unique<engine::model_runner>(*st.model, so.num_blocks, so.block_size);
  st.steps = std::make_unique<step_pipeline>(*st.runner, st.overlap);
  if (std::string err = st.backend->last_error(); !err.empty())
    return {false, int(errc::resource_exhausted),
            "the GPU failed while allocating the KV cache of " + std::to_string(so.num_blocks) + " blocks: " + err};
  st.model->prepare_products(so.max_num_batched_tokens, so.max_num_seqs);  // as engine::llm does
  if (std::string err = st.backend->last_error(); !err.empty())
    return {false, int(errc::internal), "the GPU failed while preparing the matrix products: " + err};
  return {};
}

// A step launched and unfinished is finished here unless an execute message is next, whose
// handler launches that step first (when it may). Until one of the two happens the step runs on the
// device and this thread checks every engine::launch_poll_interval: the device never waits for a message that is
// not coming, nor for the host once one has come.
void settle(pointer self) {
  step_pipeline& steps = *self->state.steps;
  while (steps.busy()) {
    if (!steps.overlap() || steps.oldest_ready()) {
      steps.finish_oldest();
      continue;
    }
    if (const caf::mailbox_element* next = self->mailbox().peek()) {
      if (!next->content().match_elements<execute_atom, step_plan>()) steps.finish_oldest();
      return;  // anything else is not left waiting behind the step
    }
    std::this_thread::sleep_for(engine::launch_poll_interval);
  }
}

executor_actor::behavior_type executor_fn(pointer self, runtime_shared* shared, std::string name) {
  self->state.shared = shared;
  self->state.depth = shared->metrics.add_mailbox(name);
  self->state.overlap = engine::overlap_enabled();  // read at each start: a process may run both ways
  self->attach_functor([shared] { shared->actor_ended(); });
  // A device error ends this actor; its exit reason carries the message for the scheduler.
  self->set_exception_handler([](caf::scheduled_actor*, std::exception_ptr& e) -> caf::error {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      return caf::make_error(caf::sec::runtime_error, std::string(x.what()));
    } catch (...) {
      return caf::make_error(caf::sec::runtime_error, std::string("unknown exception"));
    }
  });
  return {
      [self](init_atom) { return load(self->state); },
      [self](execute_atom, step_plan& plan) {
        auto& st = self->state;
        st.depth->store(int64_t(self->mailbox().size()));
        auto rp = self->make_response_promise<step_outcome>();
        if (!st.steps) {
          step_outcome out;
          out.generation = plan.generation;
          out.step = plan.step.step;
          out.ok = false;
          out.error = "the executor has no model loaded";
          rp.deliver(std::move(out));
          return rp;
        }
        st.steps->take(plan, rp);
        settle(self);
        return rp;
      },
  };
}

}  // namespace

executor_actor spawn_executor(caf::local_actor* parent, runtime_shared& shared, const std::string& name) {
  shared.actor_started();
  return parent->spawn<caf::detached>(executor_fn, &shared, name);
}

}  // namespace troupe::actors
