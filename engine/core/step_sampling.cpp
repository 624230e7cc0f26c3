// Recipes from samplers, one sample op per step, results back into the step_result.
#include "engine/core/step_sampling.hpp"

#include "config/error.hpp"

namespace troupe::engine {

void sample_step(kernels::backend& be, const kernels::tensor& logits, std::span<const sampling_row> rows,
                 step_result& res) {
  if (rows.empty()) return;
  end_step_sampling(be, begin_step_sampling(be, logits, rows), rows, res);
}

int begin_step_sampling(kernels::backend& be, const kernels::tensor& logits, std::span<const sampling_row> rows) {
  TROUPE_CHECK(logits.dims.rows() == int64_t(rows.size()));
  kernels::sampling_batch batch;
  batch.rows.reserve(rows.size());
  for (const sampling_row& r : rows) {
    kernels::row_recipe recipe;
    if (r.prompt_token >= 0) {
      recipe.score_token = r.prompt_token;
    } else {
      TROUPE_CHECK(r.pick != nullptr);
      recipe = r.pick->next_recipe(batch.adjustments);
    }
    recipe.logprobs = r.logprobs;
    batch.rows.push_back(recipe);
  }
  return be.sample_begin(logits, batch);
}

void end_step_sampling(kernels::backend& be, int ticket, std::span<const sampling_row> rows, step_result& res) {
  kernels::sample_result out;
  be.sample_end(ticket, out);
  TROUPE_CHECK(out.tokens.size() == rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const sampling_row& r = rows[i];
    if (r.prompt_token >= 0) {
      res.prompt_logprobs[r.entry].push_back(std::move(out.logprobs[i]));
      continue;
    }
    res.sampled[r.entry] = out.tokens[i];
    if (r.pick != nullptr) r.pick->record(out.tokens[i]);
    if (r.logprobs >= 0) res.logprobs[r.entry].push_back(std::move(out.logprobs[i]));
  }
}

}  // namespace troupe::engine
