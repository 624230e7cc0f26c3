// One sequence over the paged KV cache: block allocation, step inputs, and prompt logits.
#include "engine/model/sequence_runner.hpp"

#include <algorithm>

namespace troupe::engine {

sequence_runner::sequence_runner(llama_model& model, kv_cache& cache) : model_(model), cache_(cache) {}

sequence_runner::~sequence_runner() { reset(); }

void sequence_runner::reset() {
  for (int32_t b : blocks_) cache_.free_block(b);
  blocks_.clear();
  size_ = 0;
}

expected<std::vector<float>> sequence_runner::feed(std::span<const int32_t> ids, bool all_logits) {
  const auto n = static_cast<int64_t>(ids.size());
  if (n == 0) return make_error("feed: no tokens given");
  const int64_t new_size = size_ + n, limit = model_.config().max_position_embeddings;
  if (new_size > limit)
    return make_error("feed: ", new_size, " tokens would pass the model's context of ", limit);
  const int64_t bs = cache_.block_size();
  const int64_t needed = (new_size + bs - 1) / bs - static_cast<int64_t>(blocks_.size());
  if (needed > cache_.num_free_blocks())
    return make_error("feed: the KV cache is full (", needed, " more blocks needed, ",
                      cache_.num_free_blocks(), " free)");
  const size_t old_blocks = blocks_.size();
  for (int64_t i = 0; i < needed; ++i) blocks_.push_back(*cache_.allocate_block());

  step_input in;
  in.token_ids.assign(ids.begin(), ids.end());
  for (int64_t i = 0; i < n; ++i) {
    int64_t pos = size_ + i;
    in.positions.push_back(static_cast<int32_t>(pos));
    in.slot_mapping.push_back(static_cast<int32_t>(blocks_[static_cast<size_t>(pos / bs)] * bs + pos % bs));
  }
  in.query_start_loc = {0, static_cast<int32_t>(n)};
  in.seq_lens = {static_cast<int32_t>(new_size)};
  in.block_tables = blocks_;
  in.max_blocks_per_seq = static_cast<int32_t>(blocks_.size());
  if (all_logits) {
    for (int64_t i = 0; i < n; ++i) in.logits_indices.push_back(static_cast<int32_t>(i));
  } else {
    in.logits_indices = {static_cast<int32_t>(n - 1)};
  }
  auto logits = model_.forward(in, cache_);
  if (!logits) {  // leave the sequence as it was
    while (blocks_.size() > old_blocks) {
      cache_.free_block(blocks_.back());
      blocks_.pop_back();
    }
    return logits.error();
  }
  size_ = new_size;
  return logits;
}

expected<std::vector<float>> compute_prompt_logits(const std::filesystem::path& model_dir,
                                                   std::span<const int32_t> ids, int chunk_size) {
  if (ids.empty()) return make_error("compute_prompt_logits: no tokens given");
  auto be = kernels::make_cpu_backend();
  auto model = llama_model::load(model_dir, *be);
  if (!model) return model.error();
  auto cache = (*model)->make_kv_cache_for_tokens(static_cast<int64_t>(ids.size()));
  sequence_runner runner(**model, *cache);
  const size_t step = chunk_size > 0 ? static_cast<size_t>(chunk_size) : ids.size();
  std::vector<float> all;
  for (size_t start = 0; start < ids.size(); start += step) {
    auto logits = runner.feed(ids.subspan(start, std::min(step, ids.size() - start)), true);
    if (!logits) return logits.error();
    all.insert(all.end(), logits->begin(), logits->end());
  }
  return all;
}

}  // namespace troupe::engine
