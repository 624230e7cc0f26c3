// Block pool: exact block ids and free-list order through allocate, touch, release and eviction;
// cached lookups confirmed by tokens, parents and extra keys, so hash collisions never match.
#include <catch2/catch.hpp>

#include <vector>

#include "engine/core/block_pool.hpp"

using namespace troupe::engine;
using ids = std::vector<int32_t>;

namespace {

ids tokens(int32_t first, int32_t n) {
  ids out;
  for (int32_t i = 0; i < n; ++i) out.push_back(first + i);
  return out;
}

}  // namespace

TEST_CASE("allocation pops the head of the free list; release appends to its tail in the given order") {
  block_pool pool(6, 4, true);
  REQUIRE(pool.free_list() == ids{0, 1, 2, 3, 4, 5});
  auto a = pool.allocate(3);
  REQUIRE(a.has_value());
  REQUIRE(*a == ids{0, 1, 2});
  REQUIRE(pool.num_free_blocks() == 3);
  REQUIRE(pool.free_list() == ids{3, 4, 5});
  REQUIRE(pool.block(1).ref_cnt == 1);
  pool.release(ids{2, 0});
  REQUIRE(pool.free_list() == ids{3, 4, 5, 2, 0});
  REQUIRE(pool.block(0).ref_cnt == 0);
  REQUIRE_FALSE(pool.allocate(6).has_value());  // asks for too much: changes nothing
  REQUIRE(pool.free_list() == ids{3, 4, 5, 2, 0});
  REQUIRE(*pool.allocate(4) == ids{3, 4, 5, 2});
  REQUIRE(pool.free_list() == ids{0});
  REQUIRE(*pool.allocate(0) == ids{});
}

TEST_CASE("touch removes a free block from the middle of the list and counts references") {
  block_pool pool(5, 4, true);
  auto a = *pool.allocate(5);
  pool.release(ids{4, 3, 2, 1, 0});
  REQUIRE(pool.free_list() == ids{4, 3, 2, 1, 0});
  pool.touch(ids{2});
  REQUIRE(pool.free_list() == ids{4, 3, 1, 0});
  pool.touch(ids{2});
  REQUIRE(pool.block(2).ref_cnt == 2);
  pool.touch(ids{0, 4});  // the tail and the head
  REQUIRE(pool.free_list() == ids{3, 1});
  pool.release(ids{2});
  REQUIRE(pool.free_list() == ids{3, 1});  // still held once
  pool.release(ids{2, 4, 0});
  REQUIRE(pool.free_list() == ids{3, 1, 2, 4, 0});
}

TEST_CASE("cached blocks stay findable while free and are evicted lazily from the head, LRU first") {
  block_pool pool(4, 2, true);
  auto a = *pool.allocate(2);  // 0, 1: a two-block sequence
  const ids t0 = tokens(10, 2), t1 = tokens(12, 2);
  const uint64_t h0 = pool.hash_block(root_block_hash, t0, {});
  const uint64_t h1 = pool.hash_block(h0, t1, {});
  pool.cache_block(0, h0, -1, t0, {});
  pool.cache_block(1, h1, 0, t1, {});
  REQUIRE(pool.num_cached_blocks() == 2);
  pool.release(ids{1, 0});  // the tail of the sequence first
  REQUIRE(pool.free_list() == ids{2, 3, 1, 0});
  REQUIRE(pool.lookup(h0, -1, t0, {}) == 0);
  REQUIRE(pool.lookup(h1, 0, t1, {}) == 1);
  // Two new blocks come from the never-cached ones first: nothing is evicted.
  REQUIRE(*pool.allocate(2) == ids{2, 3});
  REQUIRE(pool.num_cached_blocks() == 2);
  // The next one evicts block 1 (least recently used); block 0 stays cached.
  REQUIRE(*pool.allocate(1) == ids{1});
  REQUIRE(pool.num_cached_blocks() == 1);
  REQUIRE_FALSE(pool.lookup(h1, 0, t1, {}).has_value());
  REQUIRE(pool.lookup(h0, -1, t0, {}) == 0);
  REQUIRE(pool.free_list() == ids{0});
}

TEST_CASE("a lookup confirms tokens, extra keys and the parent: a forced hash collision is a miss") {
  // Every block hashes to 7: lookups must fall back on comparing what the blocks hold.
  block_pool pool(6, 2, true, [](uint64_t, std::span<const int32_t>, std::span<const int64_t>) {
    return uint64_t{7};
  });
  auto a = *pool.allocate(6);
  const ids x = {1, 2}, y = {3, 4};
  pool.cache_block(0, 7, -1, x, {});
  pool.cache_block(1, 7, 0, y, {});  // x y
  pool.cache_block(2, 7, -1, y, {});  // y ...
  pool.cache_block(3, 7, 2, y, {});  // y y
  const std::vector<int64_t> salt = {42};
  pool.cache_block(4, 7, -1, x, salt);
  REQUIRE(pool.lookup(7, -1, x, {}) == 0);
  REQUIRE(pool.lookup(7, -1, y, {}) == 2);
  REQUIRE(pool.lookup(7, 0, y, {}) == 1);
  REQUIRE(pool.lookup(7, 2, y, {}) == 3);
  REQUIRE(pool.lookup(7, -1, x, salt) == 4);
  REQUIRE_FALSE(pool.lookup(7, 0, x, {}).has_value());
  REQUIRE_FALSE(pool.lookup(7, -1, ids{1, 3}, {}).has_value());
  REQUIRE_FALSE(pool.lookup(7, -1, x, std::vector<int64_t>{43}).has_value());
}

TEST_CASE("a child block no longer matches once its parent left the cache and was reused") {
  block_pool pool(3, 2, true);
  auto a = *pool.allocate(2);
  const ids x = {1, 2}, y = {3, 4};
  const uint64_t hx = pool.hash_block(root_block_hash, x, {});
  const uint64_t hy = pool.hash_block(hx, y, {});
  pool.cache_block(0, hx, -1, x, {});
  pool.cache_block(1, hy, 0, y, {});
  pool.release(ids{0});  // only the parent is free
  REQUIRE(*pool.allocate(2) == ids{2, 0});  // block 0 is evicted and reused
  REQUIRE(pool.lookup(hy, 0, y, {}) == std::nullopt);  // block 0 now holds something else
}

TEST_CASE("uncache forgets a block at once; with caching disabled nothing is ever found") {
  block_pool pool(2, 2, true);
  auto a = *pool.allocate(1);
  const ids x = {5, 6};
  const uint64_t h = pool.hash_block(root_block_hash, x, {});
  pool.cache_block(0, h, -1, x, {});
  pool.uncache(0);
  REQUIRE(pool.num_cached_blocks() == 0);
  REQUIRE_FALSE(pool.lookup(h, -1, x, {}).has_value());

  block_pool off(2, 2, false);
  auto b = *off.allocate(1);
  off.cache_block(0, h, -1, x, {});
  REQUIRE(off.num_cached_blocks() == 0);
  REQUIRE_FALSE(off.lookup(h, -1, x, {}).has_value());
}

TEST_CASE("the default hash chains the parent, the tokens and the extra keys") {
  const ids x = {1, 2, 3, 4};
  const uint64_t h = xxh3_block_hash(root_block_hash, x, {});
  REQUIRE(h == xxh3_block_hash(root_block_hash, x, {}));
  REQUIRE(h != xxh3_block_hash(root_block_hash + 1, x, {}));
  REQUIRE(h != xxh3_block_hash(root_block_hash, ids{1, 2, 3, 5}, {}));
  REQUIRE(h != xxh3_block_hash(root_block_hash, x, std::vector<int64_t>{0}));
  const ids long_block = tokens(0, 300);  // larger than the stack buffer
  REQUIRE(xxh3_block_hash(h, long_block, {}) == xxh3_block_hash(h, long_block, {}));
}
