// Every message, atom, type id and typed actor interface of the actor layer, in one place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "engine/core/model_runner.hpp"
#include "engine/core/request.hpp"
#include "engine/core/schedule_output.hpp"

namespace troupe::actors {

struct tokenize_reply;
struct status_reply;
struct sample_update;
struct request_update;
struct admit_msg;
struct step_plan;
struct step_outcome;

}  // namespace troupe::actors

// Type ids of every message element that is not a CAF built-in. An application that runs the
// runtime inside its own actor system registers them with
// `cfg.add_message_types<caf::id_block::troupe>()`.
CAF_BEGIN_TYPE_ID_BLOCK(troupe, caf::first_custom_type_id)

  CAF_ADD_TYPE_ID(troupe, (troupe::actors::tokenize_reply))
  CAF_ADD_TYPE_ID(troupe, (troupe::actors::status_reply))
  CAF_ADD_TYPE_ID(troupe, (troupe::actors::sample_update))
  CAF_ADD_TYPE_ID(troupe, (troupe::actors::request_update))
  CAF_ADD_TYPE_ID(troupe, (troupe::actors::admit_msg))
  CAF_ADD_TYPE_ID(troupe, (troupe::actors::step_plan))
  CAF_ADD_TYPE_ID(troupe, (troupe::actors::step_outcome))

  CAF_ADD_ATOM(troupe, troupe::actors, tokenize_atom, "tokenize")
  CAF_ADD_ATOM(troupe, troupe::actors, admit_atom, "admit")
  CAF_ADD_ATOM(troupe, troupe::actors, cancel_atom, "cancel")
  CAF_ADD_ATOM(troupe, troupe::actors, stop_atom, "stop")
  CAF_ADD_ATOM(troupe, troupe::actors, execute_atom, "execute")
  CAF_ADD_ATOM(troupe, troupe::actors, init_atom, "init")
  CAF_ADD_ATOM(troupe, troupe::actors, start_atom, "start")
  CAF_ADD_ATOM(troupe, troupe::actors, drain_atom, "drain")
  CAF_ADD_ATOM(troupe, troupe::actors, cancel_all_atom, "cancelall")

CAF_END_TYPE_ID_BLOCK(troupe)

namespace troupe::actors {

/// A tokenizer actor's answer: the ids, or why the text could not be tokenised.
struct tokenize_reply {
  std::vector<int32_t> ids;
  std::string error;
};

/// Success, or an error with its kind (a troupe::errc as an integer).
struct status_reply {
  bool ok = true;
  int32_t code = 0;
  std::string message;
};

/// What one step (or a cancellation) did to one of a request's samples.
struct sample_update {
  int32_t sample = 0;
  std::vector<int32_t> token_ids;
  std::vector<engine::logprobs_entry> logprobs;
  bool finished = false;
  std::string finish_reason;  ///< "stop", "length", "abort", "error" when finished
  std::string stop_reason;
};

/// The scheduler's news for one request actor after a step: every sample of it that changed.
struct request_update {
  std::vector<sample_update> samples;
  std::vector<engine::logprobs_entry> prompt_logprobs;  ///< prompt rows scored in this step
  int64_t queue_ns = -1;  ///< set once: submit to first scheduled, in nanoseconds
};

/// A request actor asks the scheduler to admit its (tokenised) request as n samples.
struct admit_msg {
  int64_t request = 0;  ///< the runtime's id of the request
  std::vector<int32_t> prompt_ids;
  engine::request_params params;
  int64_t submit_ns = 0;  ///< steady clock at submit
  caf::actor client;      ///< the request actor (a request_actor handle)
};

/// One step for an executor. `generation` names the executor it was planned for.
struct step_plan {
  uint64_t generation = 0;
  engine::schedule_output step;
};

/// An executor's result of one step: the sampled tokens, or the error of the model runner.
struct step_outcome {
  uint64_t generation = 0;
  uint64_t step = 0;
  bool ok = true;
  std::string error;
  engine::step_result result;
  int64_t exec_ns = 0;
};

// Typed interfaces.

/// Tokenises text (one of a small pool).
using tokenizer_actor = caf::typed_actor<caf::replies_to<tokenize_atom, std::string, bool>::with<tokenize_reply>>;

/// One per request: follows its samples, detokenises, matches stop strings, feeds the stream.
using request_actor = caf::typed_actor<caf::reacts_to<request_update>, caf::reacts_to<cancel_atom>>;

/// One per device, on its own thread: loads the model, runs step plans.
using executor_actor = caf::typed_actor<caf::replies_to<init_atom>::with<status_reply>,
                                        caf::replies_to<execute_atom, step_plan>::with<step_outcome>>;

/// Owns the engine scheduler and the executors it feeds.
using scheduler_actor = caf::typed_actor<
    caf::replies_to<start_atom>::with<status_reply>,
    caf::replies_to<admit_atom, admit_msg>::with<status_reply>,
    caf::reacts_to<cancel_atom, int64_t>,                   // a request was cancelled
    caf::reacts_to<stop_atom, int64_t, int32_t, std::string>,  // a sample matched a stop string
    caf::reacts_to<drain_atom>,                              // admit no more
    caf::reacts_to<cancel_all_atom>>;                        // abort every request

// Inspection (serialisation and printing) of the messages and of the engine types they carry.

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tokenize_reply& x) {
  return f(caf::meta::type_name("tokenize_reply"), x.ids, x.error);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, status_reply& x) {
  return f(caf::meta::type_name("status_reply"), x.ok, x.code, x.message);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sample_update& x) {
  return f(caf::meta::type_name("sample_update"), x.sample, x.token_ids, x.logprobs, x.finished,
           x.finish_reason, x.stop_reason);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request_update& x) {
  return f(caf::meta::type_name("request_update"), x.samples, x.prompt_logprobs, x.queue_ns);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, admit_msg& x) {
  return f(caf::meta::type_name("admit_msg"), x.request, x.prompt_ids, x.params, x.submit_ns, x.client);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_plan& x) {
  return f(caf::meta::type_name("step_plan"), x.generation, x.step);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_outcome& x) {
  return f(caf::meta::type_name("step_outcome"), x.generation, x.step, x.ok, x.error, x.result, x.exec_ns);
}

}  // namespace troupe::actors

namespace troupe::kernels {

// Found by argument-dependent lookup when CAF serialises the messages above (the logprobs records
// are the kernels' own, which know nothing of CAF).

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, token_logprob& x) {
  return f(caf::meta::type_name("token_logprob"), x.token, x.logprob);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, logprobs_entry& x) {
  return f(caf::meta::type_name("logprobs_entry"), x.chosen, x.rank, x.top);
}

}  // namespace troupe::kernels

namespace troupe::engine {

// Found by argument-dependent lookup when CAF serialises the messages above.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sampling_params& x) {
  bool has_seed = x.seed.has_value();
  uint64_t seed = x.seed.value_or(0);
  auto load = caf::meta::load_callback([&]() -> caf::error {
    x.seed = has_seed ? std::optional<uint64_t>(seed) : std::nullopt;
    return caf::none;
  });
  return f(caf::meta::type_name("sampling_params"), x.temperature, x.top_p, x.top_k, x.min_p,
           x.repetition_penalty, x.presence_penalty, x.frequency_penalty, x.logit_bias, has_seed, seed,
           load);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request_params& x) {
  return f(caf::meta::type_name("request_params"), x.sampling, x.max_tokens, x.stop_token_ids, x.stop,
           x.ignore_eos, x.priority, x.n, x.cache_salt, x.logprobs, x.prompt_logprobs);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, new_request_data& x) {
  return f(caf::meta::type_name("new_request_data"), x.id, x.token_ids, x.num_prompt_tokens, x.sampling,
           x.block_ids, x.num_computed_tokens, x.logprobs, x.prompt_logprobs);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cached_request_data& x) {
  return f(caf::meta::type_name("cached_request_data"), x.id, x.new_block_ids,
           x.num_computed_tokens);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scheduled_request& x) {
  return f(caf::meta::type_name("scheduled_request"), x.id, x.num_tokens, x.samples);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, schedule_output& x) {
  return f(caf::meta::type_name("schedule_output"), x.step, x.scheduled, x.new_requests, x.cached_requests,
           x.total_num_scheduled_tokens, x.preempted_request_ids, x.finished_request_ids);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_result& x) {
  return f(caf::meta::type_name("step_result"), x.sampled, x.logprobs, x.prompt_logprobs);
}

}  // namespace troupe::engine
