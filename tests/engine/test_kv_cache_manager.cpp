// KV cache manager: exact block tables as requests grow, prefix hits with shared blocks, the last
// token's block always recomputed, reverse-order freeing, eviction order, collisions and stats.
#include <catch2/catch.hpp>

#include <vector>

#include "engine/core/kv_cache_manager.hpp"

using namespace troupe::engine;
using ids = std::vector<int32_t>;

namespace {

ids range(int32_t first, int32_t n) {
  ids out;
  for (int32_t i = 0; i < n; ++i) out.push_back(first + i);
  return out;
}

ids concat(ids a, const ids& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

ids table(const kv_cache_manager& m, const request& r) {
  auto s = m.blocks_of(r.id());
  return ids(s.begin(), s.end());
}

// Admits r as the scheduler does: cached prefix, then slots for the rest, all computed.
ids admit(kv_cache_manager& m, request& r) {
  auto hit = m.get_computed_blocks(r);
  auto fresh = m.allocate_slots(r, r.num_tokens() - hit.num_tokens, hit);
  REQUIRE(fresh.has_value());
  r.num_computed_tokens = r.num_tokens();
  return hit.block_ids;
}

}  // namespace

TEST_CASE("a request's table grows one block at a time as tokens are added") {
  kv_cache_manager m(8, 4, true);
  request r(1, range(100, 10), {});
  REQUIRE(m.get_computed_blocks(r).block_ids.empty());
  REQUIRE(*m.allocate_slots(r, 10) == ids{0, 1, 2});
  r.num_computed_tokens = 10;
  r.append_output(7);
  REQUIRE(*m.allocate_slots(r, 1) == ids{});  // token 11 fits in block 2
  r.num_computed_tokens = 11;
  r.append_output(8);
  r.num_computed_tokens = 12;
  r.append_output(9);
  REQUIRE(*m.allocate_slots(r, 1) == ids{3});  // token 13 opens block 3
  REQUIRE(table(m, r) == ids{0, 1, 2, 3});
  REQUIRE(m.pool().num_cached_blocks() == 3);  // 12 known tokens: three full blocks
  REQUIRE(m.stats().used_blocks == 4);
  r.num_computed_tokens = 13;
  m.free(r);
  REQUIRE(m.pool().free_list() == ids{4, 5, 6, 7, 3, 2, 1, 0});
  REQUIRE(table(m, r).empty());
  REQUIRE(m.stats().used_blocks == 0);
}

TEST_CASE("allocation that does not fit returns nothing and changes nothing") {
  kv_cache_manager m(3, 4, true);
  request a(1, range(0, 8), {}), b(2, range(50, 5), {});
  admit(m, a);
  REQUIRE_FALSE(m.allocate_slots(b, 5).has_value());
  REQUIRE(table(m, b).empty());
  REQUIRE(m.pool().free_list() == ids{2});
  REQUIRE(m.num_requests() == 1);
  REQUIRE(m.stats().prefix_queries == 8);  // only admissions that got their blocks count
}

TEST_CASE("equal prefixes share full blocks, never the block of the last token") {
  kv_cache_manager m(16, 4, true);
  const ids prefix = range(10, 8);
  request a(1, concat(prefix, {1, 2}), {});
  admit(m, a);
  REQUIRE(table(m, a) == ids{0, 1, 2});

  request b(2, concat(prefix, {3, 4, 5, 6, 7}), {});
  REQUIRE(admit(m, b) == ids{0, 1});
  REQUIRE(table(m, b) == ids{0, 1, 3, 4});
  REQUIRE(m.pool().block(0).ref_cnt == 2);
  REQUIRE(m.pool().block(1).ref_cnt == 2);
  REQUIRE(m.pool().block(2).ref_cnt == 1);

  // Exactly the prefix: its second block holds the last token, so only the first is reused.
  request c(3, prefix, {});
  REQUIRE(admit(m, c) == ids{0});
  REQUIRE(table(m, c) == ids{0, 5});
  REQUIRE(m.pool().block(0).ref_cnt == 3);

  // A different first block shares nothing, even with an equal second block.
  request d(4, concat(range(90, 4), range(14, 4)), {});
  REQUIRE(admit(m, d).empty());

  const auto s = m.stats();
  REQUIRE(s.prefix_queries == 10 + 13 + 8 + 8);
  REQUIRE(s.prefix_hits == 8 + 4);
  m.free(a);
  m.free(b);
  m.free(c);
  m.free(d);
  REQUIRE(m.stats().used_blocks == 0);
}

TEST_CASE("freed cached blocks are found again until evicted, the tail of a sequence first") {
  kv_cache_manager m(6, 2, true);
  request a(1, range(0, 7), {});  // blocks 0,1,2 full and cached, block 3 holds token 6
  admit(m, a);
  m.free(a);
  REQUIRE(m.pool().free_list() == ids{4, 5, 3, 2, 1, 0});
  REQUIRE(m.pool().num_cached_blocks() == 3);

  // A hit takes blocks back out of the middle of the free list.
  request b(2, range(0, 5), {});
  REQUIRE(admit(m, b) == ids{0, 1});
  REQUIRE(table(m, b) == ids{0, 1, 4});
  REQUIRE(m.pool().free_list() == ids{5, 3, 2});

  // Two more blocks evict block 2 (the tail of a's sequence) but not blocks 0 and 1.
  request c(3, range(40, 6), {});
  admit(m, c);
  REQUIRE(table(m, c) == ids{5, 3, 2});
  REQUIRE(m.pool().num_cached_blocks() == 2 + 3);  // b's blocks 0, 1 (its block 4 is partial), c's three
  m.free(b);
  m.free(c);
  request again(4, range(0, 7), {});
  REQUIRE(admit(m, again) == ids{0, 1});  // block 2 was evicted: the hit stops there
}

TEST_CASE("with prefix caching off nothing is shared") {
  kv_cache_manager m(8, 2, false);
  request a(1, range(0, 6), {});
  admit(m, a);
  request b(2, range(0, 6), {});
  REQUIRE(admit(m, b).empty());
  REQUIRE(table(m, b) == ids{3, 4, 5});
  REQUIRE(m.pool().num_cached_blocks() == 0);
}

TEST_CASE("a forced hash collision never shares blocks of different tokens") {
  kv_cache_manager m(12, 2, true, [](uint64_t, std::span<const int32_t>, std::span<const int64_t>) {
    return uint64_t{1};
  });
  request a(1, ids{1, 2, 3, 4, 5}, {});
  admit(m, a);
  request b(2, ids{9, 9, 3, 4, 5}, {});  // same second block after a different first one
  REQUIRE(admit(m, b).empty());
  request c(3, ids{1, 2, 9, 9, 5}, {});
  REQUIRE(admit(m, c) == ids{0});
  request d(4, ids{9, 9, 3, 4, 6}, {});
  REQUIRE(admit(m, d) == ids{table(m, b)[0], table(m, b)[1]});
}

TEST_CASE("cache salt separates otherwise equal prefixes") {
  kv_cache_manager m(8, 2, true);
  request_params salted;
  salted.cache_salt = {5};
  request a(1, range(0, 5), {});
  admit(m, a);
  request b(2, range(0, 5), salted);
  REQUIRE(admit(m, b).empty());
  request c(3, range(0, 5), salted);
  REQUIRE(admit(m, c) == ids{3, 4});
}

TEST_CASE("blocks cached for a step that never ran leave the cache when their request is freed") {
  kv_cache_manager m(8, 2, true);
  request a(1, range(0, 6), {});
  REQUIRE(*m.allocate_slots(a, 6) == ids{0, 1, 2});
  REQUIRE(m.pool().num_cached_blocks() == 3);
  a.num_computed_tokens = 2;  // only the first block was written (the rest is preempted)
  m.free(a);
  REQUIRE(m.pool().num_cached_blocks() == 1);
  request b(2, range(0, 6), {});
  REQUIRE(admit(m, b) == ids{0});
}
