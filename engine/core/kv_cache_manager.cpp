// Prefix-cache lookups, block allocation and freeing per request.
#include "engine/core/kv_cache_manager.hpp"

#include <algorithm>

#include "config/error.hpp"

namespace troupe::engine {

kv_cache_manager::kv_cache_manager(int32_t num_blocks, int32_t block_size, bool enable_caching,
                                   block_hash_fn hash)
    : pool_(num_blocks, block_size, enable_caching, std::move(hash)) {}

kv_cache_stats kv_cache_manager::stats() const {
  kv_cache_stats s;
  s.total_blocks = pool_.num_blocks();
  s.used_blocks = pool_.num_blocks() - pool_.num_free_blocks();
  s.cached_blocks = pool_.num_cached_blocks();
  s.prefix_queries = prefix_queries_;
  s.prefix_hits = prefix_hits_;
  return s;
}

computed_blocks kv_cache_manager::get_computed_blocks(const request& r) {
  computed_blocks out;
  if (!pool_.caching_enabled() || r.params().prompt_logprobs >= 0) return out;
  TROUPE_CHECK(blocks_of(r.id()).empty());
  const int32_t bs = block_size();
  const auto& tokens = r.all_token_ids();
  const auto& extra = r.params().cache_salt;
  const int32_t max_blocks = (r.num_tokens() - 1) / bs;  // the last token's block is computed
  uint64_t parent_hash = root_block_hash;
  int32_t parent = -1;
  for (int32_t i = 0; i < max_blocks; ++i) {
    std::span<const int32_t> ids(tokens.data() + size_t(i) * size_t(bs), size_t(bs));
    const uint64_t h = pool_.hash_block(parent_hash, ids, extra);
    auto hit = pool_.lookup(h, parent, ids, extra);
    if (!hit) break;
    out.block_ids.push_back(*hit);
    parent_hash = h;
    parent = *hit;
  }
  out.num_tokens = static_cast<int32_t>(out.block_ids.size()) * bs;
  return out;
}

std::optional<std::vector<int32_t>> kv_cache_manager::allocate_slots(const request& r, int32_t num_new_tokens,
                                                                     const computed_blocks& computed) {
  TROUPE_CHECK(num_new_tokens >= 0);
  auto found = tables_.find(r.id());
  const size_t held = found == tables_.end() ? 0 : found->second.blocks.size();
  TROUPE_CHECK(computed.block_ids.empty() || held == 0);
  const int64_t total = int64_t{r.num_computed_tokens} + computed.num_tokens + num_new_tokens;
  const int32_t needed =
      std::max(0, blocks_for(total) - static_cast<int32_t>(held + computed.block_ids.size()));
  // Hit blocks that sit in the free list stop being allocatable once taken.
  int32_t free_hits = 0;
  for (int32_t b : computed.block_ids) free_hits += pool_.block(b).ref_cnt == 0 ? 1 : 0;
  if (needed > pool_.num_free_blocks() - free_hits) return std::nullopt;

  if (held == 0 && r.num_computed_tokens == 0 && pool_.caching_enabled()) {  // an admission
    prefix_queries_ += r.num_tokens();
    prefix_hits_ += computed.num_tokens;
  }
  table& t = found == tables_.end() ? tables_[r.id()] : found->second;
  pool_.touch(computed.block_ids);
  for (int32_t b : computed.block_ids) {
    t.blocks.push_back(b);
    t.hashes.push_back(pool_.block(b).hash);
  }
  auto fresh = pool_.allocate(needed);
  TROUPE_CHECK(fresh.has_value());
  t.blocks.insert(t.blocks.end(), fresh->begin(), fresh->end());
  cache_full_blocks(r, t, static_cast<int32_t>(std::min<int64_t>(total, r.num_tokens())));
  return fresh;
}

void kv_cache_manager::cache_full_blocks(const request& r, table& t, int32_t num_tokens) {
  if (!pool_.caching_enabled()) return;
  const int32_t bs = block_size();
  const int32_t full = num_tokens / bs;
  const auto& tokens = r.all_token_ids();
  const auto& extra = r.params().cache_salt;
  for (auto i = static_cast<int32_t>(t.hashes.size()); i < full; ++i) {
    const int32_t parent = i == 0 ? -1 : t.blocks[size_t(i) - 1];
    // A chain is only extended from a cached parent (one could have left the cache while shared).
    if (parent != -1 && !pool_.block(parent).cached) return;
    const uint64_t parent_hash = i == 0 ? root_block_hash : t.hashes[size_t(i) - 1];
    std::span<const int32_t> ids(tokens.data() + size_t(i) * size_t(bs), size_t(bs));
    const uint64_t h = pool_.hash_block(parent_hash, ids, extra);
    const int32_t b = t.blocks[size_t(i)];
    if (!pool_.block(b).cached) pool_.cache_block(b, h, parent, ids, extra);
    t.hashes.push_back(h);
  }
}

void kv_cache_manager::free(const request& r) {
  auto found = tables_.find(r.id());
  if (found == tables_.end()) return;
  table& t = found->second;
  const int32_t bs = block_size();
  for (size_t i = 0; i < t.hashes.size(); ++i) {
    const kv_block& b = pool_.block(t.blocks[i]);
    const bool written = int64_t(i + 1) * bs <= r.num_computed_tokens;
    if (!written && b.cached && b.ref_cnt == 1) pool_.uncache(b.id);
  }
  std::vector<int32_t> reversed(t.blocks.rbegin(), t.blocks.rend());
  pool_.release(reversed);
  tables_.erase(found);
}

void kv_cache_manager::clear_prefix_cache() {
  for (int32_t b = 0; b < pool_.num_blocks(); ++b) pool_.uncache(b);
}

std::span<const int32_t> kv_cache_manager::blocks_of(request_id id) const {
  auto found = tables_.find(id);
  if (found == tables_.end()) return {};
  return found->second.blocks;
}

}  // namespace troupe::engine
