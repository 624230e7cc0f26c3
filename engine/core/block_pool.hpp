// The pool of KV cache block ids: reference counts, an LRU free list, and prefix caching of full blocks.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace troupe::engine {

/// The hash of a full block: chained over (parent block's hash, the block's token ids, extra keys).
using block_hash_fn = std::function<uint64_t(uint64_t parent, std::span<const int32_t> tokens,
                                             std::span<const int64_t> extra_keys)>;

/// XXH3-64 over the bytes of parent, tokens and extra keys: the default block_hash_fn.
uint64_t xxh3_block_hash(uint64_t parent, std::span<const int32_t> tokens,
                         std::span<const int64_t> extra_keys);

/// The hash the first block of a sequence chains from.
inline constexpr uint64_t root_block_hash = 0x74726f7570652d30ull;

/// One block's bookkeeping. The K/V memory itself lives in engine/model/kv_cache.
struct kv_block {
  int32_t id = 0;
  int32_t ref_cnt = 0;
  // Prefix caching: set while the block is registered in the hash map.
  bool cached = false;
  uint64_t hash = 0;
  std::vector<int32_t> token_ids;   // the tokens whose K/V the block holds (confirms a hit)
  std::vector<int64_t> extra_keys;
  int32_t parent = -1;              // the cached block before it in its sequence, -1 for the first
  uint64_t parent_generation = 0;   // the parent's generation when this block was cached
  uint64_t generation = 0;          // bumped each time the block leaves the cache
  // The free list, a doubly linked list over block ids (-1 ends it).
  int32_t prev_free = -1;
  int32_t next_free = -1;
  bool in_free_list = false;
};

/// Hands out block ids. Free blocks wait in a list in LRU order: allocation pops from the head;
/// released blocks join the tail. A cached block whose ref_cnt falls to 0 stays cached in the free
/// list and is evicted (forgotten by the hash map) only when allocation pops it, so a later request
/// with the same prefix can take it back (touch) until then.
class block_pool {
 public:
  block_pool(int32_t num_blocks, int32_t block_size, bool enable_caching,
             block_hash_fn hash = xxh3_block_hash);

  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  int32_t block_size() const { return block_size_; }
  bool caching_enabled() const { return enable_caching_; }
  /// Blocks with ref_cnt 0 (cached or not): what allocate can hand out.
  int32_t num_free_blocks() const { return num_free_; }
  /// Blocks registered in the prefix cache (in use or free).
  int32_t num_cached_blocks() const { return num_cached_; }
  const kv_block& block(int32_t id) const { return blocks_[static_cast<size_t>(id)]; }
  /// The free list from head (next to be allocated) to tail.
  std::vector<int32_t> free_list() const;

  /// n blocks with ref_cnt 1 popped from the head of the free list (evicting cached ones), or nothing
  /// (changing nothing) when fewer than n are free.
  std::optional<std::vector<int32_t>> allocate(int32_t n);
  /// Takes a reference on each block (a prefix-cache hit); a block at ref_cnt 0 leaves the free list.
  void touch(std::span<const int32_t> ids);
  /// Drops a reference on each block, in the given order; a block reaching 0 joins the tail of the
  /// free list (still cached, so still findable by lookup until it is evicted).
  void release(std::span<const int32_t> ids);
  /// Forgets a cached block now (e.g. its K/V will not be written after all).
  void uncache(int32_t id);

  /// The hash of a full block following the block whose hash is parent.
  uint64_t hash_block(uint64_t parent, std::span<const int32_t> tokens,
                      std::span<const int64_t> extra_keys) const {
    return hash_(parent, tokens, extra_keys);
  }
  /// The cached block with this hash that holds exactly these tokens and extra keys after the
  /// cached block parent (-1 for the first block), or nothing. A hash collision is a miss.
  std::optional<int32_t> lookup(uint64_t hash, int32_t parent, std::span<const int32_t> tokens,
                                std::span<const int64_t> extra_keys) const;
  /// Registers a full block in use (ref_cnt > 0) as holding these tokens after parent.
  void cache_block(int32_t id, uint64_t hash, int32_t parent, std::span<const int32_t> tokens,
                   std::span<const int64_t> extra_keys);

 private:
  void unlink(int32_t id);
  void push_tail(int32_t id);
  void evict(int32_t id);

  int32_t block_size_;
  bool enable_caching_;
  block_hash_fn hash_;
  std::vector<kv_block> blocks_;
  int32_t head_ = -1, tail_ = -1, num_free_ = 0, num_cached_ = 0;
  std::unordered_multimap<uint64_t, int32_t> cache_;  // hash -> cached block ids (collisions allowed)
};

}  // namespace troupe::engine
