// Block ids with reference counts, the LRU free list and the prefix-cache hash map.
#include "engine/core/block_pool.hpp"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "config/error.hpp"

namespace troupe::engine {

uint64_t xxh3_block_hash(uint64_t parent, std::span<const int32_t> tokens,
                         std::span<const int64_t> extra_keys) {
  // One buffer: parent, token count, tokens, extra keys (the count keeps the fields apart).
  const size_t bytes = 2 * sizeof(uint64_t) + tokens.size_bytes() + extra_keys.size_bytes();
  unsigned char stack[2 * sizeof(uint64_t) + 64 * sizeof(int32_t) + 8 * sizeof(int64_t)];
  std::vector<unsigned char> heap;
  unsigned char* buf = stack;
  if (bytes > sizeof(stack)) {
    heap.resize(bytes);
    buf = heap.data();
  }
  const uint64_t count = tokens.size();
  std::memcpy(buf, &parent, sizeof(parent));
  std::memcpy(buf + 8, &count, sizeof(count));
  if (!tokens.empty()) std::memcpy(buf + 16, tokens.data(), tokens.size_bytes());
  if (!extra_keys.empty())
    std::memcpy(buf + 16 + tokens.size_bytes(), extra_keys.data(), extra_keys.size_bytes());
  return XXH3_64bits(buf, bytes);
}

block_pool::block_pool(int32_t num_blocks, int32_t block_size, bool enable_caching, block_hash_fn hash)
    : block_size_(block_size), enable_caching_(enable_caching), hash_(std::move(hash)) {
  TROUPE_CHECK(num_blocks > 0 && block_size > 0 && hash_);
  blocks_.resize(static_cast<size_t>(num_blocks));
  cache_.reserve(static_cast<size_t>(num_blocks));  // each block is cached at most once: no rehash
  for (int32_t i = 0; i < num_blocks; ++i) {
    blocks_[static_cast<size_t>(i)].id = i;
    push_tail(i);
  }
}

std::vector<int32_t> block_pool::free_list() const {
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(num_free_));
  for (int32_t b = head_; b != -1; b = blocks_[static_cast<size_t>(b)].next_free) out.push_back(b);
  return out;
}

void block_pool::unlink(int32_t id) {
  kv_block& b = blocks_[static_cast<size_t>(id)];
  TROUPE_CHECK(b.in_free_list);
  if (b.prev_free != -1) blocks_[static_cast<size_t>(b.prev_free)].next_free = b.next_free;
  else head_ = b.next_free;
  if (b.next_free != -1) blocks_[static_cast<size_t>(b.next_free)].prev_free = b.prev_free;
  else tail_ = b.prev_free;
  b.prev_free = b.next_free = -1;
  b.in_free_list = false;
  --num_free_;
}

void block_pool::push_tail(int32_t id) {
  kv_block& b = blocks_[static_cast<size_t>(id)];
  TROUPE_CHECK(!b.in_free_list && b.ref_cnt == 0);
  b.prev_free = tail_;
  b.next_free = -1;
  if (tail_ != -1) blocks_[static_cast<size_t>(tail_)].next_free = id;
  else head_ = id;
  tail_ = id;
  b.in_free_list = true;
  ++num_free_;
}

void block_pool::evict(int32_t id) {
  kv_block& b = blocks_[static_cast<size_t>(id)];
  if (!b.cached) return;
  auto [first, last] = cache_.equal_range(b.hash);
  for (auto it = first; it != last; ++it)
    if (it->second == id) {
      cache_.erase(it);
      break;
    }
  b.cached = false;
  b.hash = 0;
  b.token_ids.clear();
  b.extra_keys.clear();
  b.parent = -1;
  b.parent_generation = 0;
  ++b.generation;  // blocks cached after this one no longer chain from it
  --num_cached_;
}

std::optional<std::vector<int32_t>> block_pool::allocate(int32_t n) {
  TROUPE_CHECK(n >= 0);
  if (n > num_free_) return std::nullopt;
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    const int32_t id = head_;
    unlink(id);
    evict(id);
    blocks_[static_cast<size_t>(id)].ref_cnt = 1;
    out.push_back(id);
  }
  return out;
}

void block_pool::touch(std::span<const int32_t> ids) {
  for (int32_t id : ids) {
    kv_block& b = blocks_[static_cast<size_t>(id)];
    if (b.ref_cnt == 0) unlink(id);
    ++b.ref_cnt;
  }
}

void block_pool::release(std::span<const int32_t> ids) {
  for (int32_t id : ids) {
    kv_block& b = blocks_[static_cast<size_t>(id)];
    TROUPE_CHECK(b.ref_cnt > 0);
    if (--b.ref_cnt == 0) push_tail(id);
  }
}

void block_pool::uncache(int32_t id) { evict(id); }

std::optional<int32_t> block_pool::lookup(uint64_t hash, int32_t parent, std::span<const int32_t> tokens,
                                          std::span<const int64_t> extra_keys) const {
  if (!enable_caching_) return std::nullopt;
  auto [first, last] = cache_.equal_range(hash);
  for (auto it = first; it != last; ++it) {
    const kv_block& b = blocks_[static_cast<size_t>(it->second)];
    if (b.parent != parent) continue;
    if (parent != -1 && b.parent_generation != blocks_[static_cast<size_t>(parent)].generation) continue;
    if (!std::equal(tokens.begin(), tokens.end(), b.token_ids.begin(), b.token_ids.end())) continue;
    if (!std::equal(extra_keys.begin(), extra_keys.end(), b.extra_keys.begin(), b.extra_keys.end()))
      continue;
    return b.id;
  }
  return std::nullopt;
}

void block_pool::cache_block(int32_t id, uint64_t hash, int32_t parent, std::span<const int32_t> tokens,
                             std::span<const int64_t> extra_keys) {
  if (!enable_caching_) return;
  kv_block& b = blocks_[static_cast<size_t>(id)];
  TROUPE_CHECK(b.ref_cnt > 0 && !b.cached && tokens.size() == static_cast<size_t>(block_size_));
  TROUPE_CHECK(parent == -1 || blocks_[static_cast<size_t>(parent)].cached);
  b.cached = true;
  b.hash = hash;
  b.token_ids.assign(tokens.begin(), tokens.end());
  b.extra_keys.assign(extra_keys.begin(), extra_keys.end());
  b.parent = parent;
  b.parent_generation = parent == -1 ? 0 : blocks_[static_cast<size_t>(parent)].generation;
  cache_.emplace(hash, id);
  ++num_cached_;
}

}  // namespace troupe::engine
