// The host-side description of one forward step over a batch of sequences and the paged KV cache.
#pragma once

#include <cstdint>
#include <vector>

namespace troupe::engine {

/// One step: the new tokens of every sequence in the batch, flattened, and where their keys and
/// values go. A sequence may be in prefill (many new tokens, possibly after a cached prefix) or in
/// decode (one new token); both mix freely in one batch.
struct step_input {
  std::vector<int32_t> token_ids;        ///< [num_tokens]
  std::vector<int32_t> positions;        ///< [num_tokens], position of each token in its sequence
  std::vector<int32_t> slot_mapping;     ///< [num_tokens], block * block_size + offset in the KV cache
  std::vector<int32_t> query_start_loc;  ///< [num_seqs + 1], cumulative new-token counts (cu_seqlens)
  std::vector<int32_t> seq_lens;         ///< [num_seqs], context per sequence including the new tokens
  std::vector<int32_t> block_tables;     ///< [num_seqs x max_blocks_per_seq], padded with 0
  int32_t max_blocks_per_seq = 0;
  std::vector<int32_t> logits_indices;   ///< token rows whose logits the caller wants, in order
  /// Token ids the backend's sample op is still producing (a step launched before the last one's
  /// tokens reached the host): token fed_at[i] is row fed_rows[i] of sample ticket fed_ticket
  /// (kernels::backend::feed_sampled); token_ids holds any valid id there. fed_ticket -1: none.
  int32_t fed_ticket = -1;
  std::vector<int32_t> fed_rows, fed_at;

  int32_t num_tokens() const { return static_cast<int32_t>(token_ids.size()); }
  int32_t num_seqs() const { return static_cast<int32_t>(seq_lens.size()); }
};

}  // namespace troupe::engine
