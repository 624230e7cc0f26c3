// Which KV blocks each request holds: prefix-cache lookups, slot allocation as requests grow, freeing.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/core/block_pool.hpp"
#include "engine/core/request.hpp"

namespace troupe::engine {

/// The cached prefix a request can start from: full blocks whose K/V is already in the cache.
struct computed_blocks {
  std::vector<int32_t> block_ids;
  int32_t num_tokens = 0;  ///< block_ids.size() * block_size
};

/// Usage figures.
struct kv_cache_stats {
  int32_t total_blocks = 0;
  int32_t used_blocks = 0;     ///< blocks with ref_cnt > 0
  int32_t cached_blocks = 0;   ///< blocks registered in the prefix cache (used or free)
  int64_t prefix_queries = 0;  ///< tokens of admitted requests (counted at their first allocation)
  int64_t prefix_hits = 0;     ///< of those, tokens found in the prefix cache
};

/// Owns the block_pool and each request's block table. Full blocks are registered in the prefix
/// cache as soon as their tokens are known and their K/V is scheduled to be written (the model
/// writes every token's K/V before any attention of the same step reads it, so a request admitted
/// later in the same step may already share them).
class kv_cache_manager {
 public:
  kv_cache_manager(int32_t num_blocks, int32_t block_size, bool enable_caching,
                   block_hash_fn hash = xxh3_block_hash);

  int32_t block_size() const { return pool_.block_size(); }
  int32_t num_blocks() const { return pool_.num_blocks(); }
  const block_pool& pool() const { return pool_; }
  kv_cache_stats stats() const;

  /// The longest cached prefix of r's tokens in full blocks, never including the block that holds
  /// r's last token (its logits must be computed), and nothing for a request that asks for prompt
  /// logprobs (they need the logits of every prompt row). Call for a request that holds no blocks.
  computed_blocks get_computed_blocks(const request& r);

  /// Makes room for num_new_tokens more tokens after r.num_computed_tokens and the new computed
  /// blocks (a prefix-cache hit, taken here): returns the block ids added to r's table, or nothing
  /// (changing nothing) when too few blocks are free.
  std::optional<std::vector<int32_t>> allocate_slots(const request& r, int32_t num_new_tokens,
                                                     const computed_blocks& computed = {});

  /// Gives back every block of r, last block first so that the tail of a sequence is evicted
  /// first. Cached blocks whose K/V was never written (beyond r.num_computed_tokens) and that
  /// nobody else holds leave the cache.
  void free(const request& r);

  /// Forgets every cached block (used or free): none can be found by a lookup any more. For when
  /// blocks may be registered whose K/V was never written (a step that failed).
  void clear_prefix_cache();

  /// r's block table (empty when it holds none).
  std::span<const int32_t> blocks_of(request_id id) const;
  /// Requests that hold blocks.
  size_t num_requests() const { return tables_.size(); }
  /// Blocks needed to hold n tokens.
  int32_t blocks_for(int64_t tokens) const {
    return static_cast<int32_t>((tokens + block_size() - 1) / block_size());
  }

 private:
  struct table {
    std::vector<int32_t> blocks;
    std::vector<uint64_t> hashes;  // of its first num_cached blocks
  };
  void cache_full_blocks(const request& r, table& t, int32_t num_tokens);

  block_pool pool_;
  std::unordered_map<request_id, table> tables_;
  int64_t prefix_queries_ = 0, prefix_hits_ = 0;
};

}  // namespace troupe::engine
