// The simplest driver of the model: one sequence over the paged KV cache, fed a few ids at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "config/error.hpp"
#include "engine/model/kv_cache.hpp"
#include "engine/model/llama_model.hpp"

namespace troupe::engine {

/// Runs one sequence: each feed appends ids at the next positions, allocating cache blocks as
/// needed, and returns logits. Frees its blocks on reset and destruction.
class sequence_runner {
 public:
  explicit sequence_runner(llama_model& model, kv_cache& cache);
  ~sequence_runner();
  sequence_runner(const sequence_runner&) = delete;
  sequence_runner& operator=(const sequence_runner&) = delete;

  /// Appends ids (positions continue from what was fed before) and returns the logits of the last
  /// position ([vocab]), or of every fed position when all_logits ([ids.size() x vocab]). Errors,
  /// changing nothing, when ids is empty, the context would pass max_position_embeddings or the
  /// cache has no free block.
  expected<std::vector<float>> feed(std::span<const int32_t> ids, bool all_logits = false);
  /// Forgets the sequence and frees its blocks.
  void reset();
  /// Tokens fed so far.
  int64_t size() const { return size_; }
  /// The cache blocks holding the sequence, in order.
  const std::vector<int32_t>& blocks() const { return blocks_; }

 private:
  llama_model& model_;
  kv_cache& cache_;
  std::vector<int32_t> blocks_;
  int64_t size_ = 0;
};

/// Loads the model of model_dir on the CPU backend and returns the logits of every position of ids,
/// [ids.size() x vocab]. chunk_size > 0 feeds the prompt in chunks of that many tokens through the
/// same cache (which gives the same logits as one chunk).
expected<std::vector<float>> compute_prompt_logits(const std::filesystem::path& model_dir,
                                                   std::span<const int32_t> ids, int chunk_size = 0);

}  // namespace troupe::engine
