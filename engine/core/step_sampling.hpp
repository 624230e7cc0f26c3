// One step's sampling: a recipe per row of logits from each request's sampler, the backend's sample
// op where the logits are, and the tokens and logprobs into the step's result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/core/model_runner.hpp"
#include "engine/sampling/sampler.hpp"
#include "kernels/backend.hpp"

namespace troupe::engine {

/// A row of the step's logits and what it is for.
struct sampling_row {
  size_t entry = 0;            ///< index in the schedule output's `scheduled`
  int32_t prompt_token = -1;   ///< the prompt token it scores, or -1: it samples with `pick`
  sampler* pick = nullptr;     ///< the request's sampler (records the sampled token)
  int32_t logprobs = -1;       ///< top logprobs wanted (-1: none)
};

/// Samples or scores every row of logits [rows.size(), vocab] (in the backend's memory) and fills
/// res.sampled, res.logprobs and res.prompt_logprobs (prompt rows in row order).
void sample_step(kernels::backend& be, const kernels::tensor& logits, std::span<const sampling_row> rows,
                 step_result& res);

/// sample_step in two halves (kernels::backend::sample_begin / sample_end): the recipes are made and
/// the sample op started; later its results go into res, and each row's sampler (where not null:
/// its request may have ended meanwhile) records its token.
int begin_step_sampling(kernels::backend& be, const kernels::tensor& logits, std::span<const sampling_row> rows);
void end_step_sampling(kernels::backend& be, int ticket, std::span<const sampling_row> rows, step_result& res);

}  // namespace troupe::engine
