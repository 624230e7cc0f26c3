// Names of request states and finish reasons.
#include "engine/core/request.hpp"

namespace troupe::engine {

request::request(request_id id, std::vector<int32_t> prompt_ids, request_params params,
                 std::vector<int32_t> eos_token_ids)
    : id_(id),
      tokens_(std::move(prompt_ids)),
      num_prompt_(static_cast<int32_t>(tokens_.size())),
      params_(std::move(params)),
      eos_(std::move(eos_token_ids)) {}

request_params child_params(const request_params& p, int32_t index) {
  request_params c = p;
  c.n = 1;
  if (c.sampling.seed) c.sampling.seed = *c.sampling.seed + static_cast<uint64_t>(index);
  return c;
}

std::string_view to_string(request_status s) {
  switch (s) {
    case request_status::waiting: return "waiting";
    case request_status::running: return "running";
    case request_status::preempted: return "preempted";
    case request_status::finished_stopped: return "finished_stopped";
    case request_status::finished_length: return "finished_length";
    case request_status::finished_aborted: return "finished_aborted";
    case request_status::finished_error: return "finished_error";
  }
  return "?";
}

std::string_view to_string(finish_reason r) {
  switch (r) {
    case finish_reason::none: return "";
    case finish_reason::stop: return "stop";
    case finish_reason::length: return "length";
    case finish_reason::abort: return "abort";
    case finish_reason::error: return "error";
  }
  return "";
}

finish_reason reason_of(request_status s) {
  switch (s) {
    case request_status::finished_stopped: return finish_reason::stop;
    case request_status::finished_length: return finish_reason::length;
    case request_status::finished_aborted: return finish_reason::abort;
    case request_status::finished_error: return finish_reason::error;
    default: return finish_reason::none;
  }
}

}  // namespace troupe::engine
