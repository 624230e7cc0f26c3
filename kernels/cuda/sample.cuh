// The kernels of the backend's sample op (sample_greedy.cu, sample_rows.cu, sample_logprobs.cu) and
// the device result records; kernels/cuda/sample.cu drives them.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/dtype.hpp"
#include "kernels/sampling.hpp"

namespace troupe::kernels::cuda {

/// One row's logprobs as the device writes them (copied back as is).
struct device_logprobs {
  int32_t token;
  float logprob;
  int64_t rank;
  int32_t top_tokens[max_top_logprobs];
  float top_logprobs[max_top_logprobs];
};

/// ids[at[i]] = tokens[rows[i]] for i < count (count <= feed_pairs; the pairs travel as arguments).
constexpr int feed_pairs = 256;
struct feed_args {
  int32_t rows[feed_pairs];
  int32_t at[feed_pairs];
};
cudaError_t feed_tokens(const int32_t* tokens, const feed_args& pairs, int count, int32_t* ids, cudaStream_t stream);

/// tokens[dst ? dst[b] : b] = argmax of row (src ? src[b] : b) of x [*, row_stride], for `count`
/// rows: the lowest index among equal maxima; NaN is never picked (a row of NaN gives 0).
cudaError_t argmax_rows(dtype type, const void* x, int64_t row_stride, int64_t vocab, const int32_t* src,
                        const int32_t* dst, int64_t count, int32_t* tokens, cudaStream_t stream);

/// Work rows: keys[w, j] = logits[src[w], j] as float (-0 as +0), ids[w, j] = j, then each row's
/// adjustments (recipes[src[w]]) applied in order.
cudaError_t prepare_work_rows(dtype type, const void* logits, int64_t vocab, const int32_t* src, int64_t count,
                              const row_recipe* recipes, const logit_adjustment* adjustments, float* keys,
                              int32_t* ids, cudaStream_t stream);

/// Sorts `count` work rows of `vocab` keys by decreasing key, ids along (stable: equal keys keep
/// lower ids first). keys/ids hold two buffers each (CUB's double buffer); returns in *current which
/// one holds the result. offsets: count + 1 entries j * vocab. temp may be null to ask *temp_bytes.
cudaError_t sort_work_rows(void* temp, size_t* temp_bytes, float* keys[2], int32_t* ids[2], int64_t vocab,
                           int64_t count, const int32_t* offsets, int* current, cudaStream_t stream);

/// Draws the token of each sorted work row: tokens[src[w]] by recipes[src[w]] (temperature > 0).
cudaError_t draw_rows(const float* keys, const int32_t* ids, int64_t vocab, const int32_t* src, int64_t count,
                      const row_recipe* recipes, int32_t* tokens, cudaStream_t stream);

/// Logprobs of rows[b] of the raw logits for its token (recipe's score_token, else tokens[row]) and
/// the recipe's top n, into out[b].
cudaError_t logprobs_rows(dtype type, const void* logits, int64_t vocab, const int32_t* rows, int64_t count,
                          const row_recipe* recipes, const int32_t* tokens, device_logprobs* out,
                          cudaStream_t stream);

}  // namespace troupe::kernels::cuda
