// Paged key/value memory and its block free list.
#include "engine/model/kv_cache.hpp"

#include <atomic>

namespace troupe::engine {

namespace {
std::atomic<uint64_t> next_serial{1};
}

kv_cache::kv_cache(kernels::backend& be, const kv_cache_shape& shape)
    : shape_(shape), serial_(next_serial.fetch_add(1)) {
  TROUPE_CHECK(shape.num_layers > 0 && shape.num_blocks > 0 && shape.block_size > 0);
  TROUPE_CHECK(shape.num_kv_heads > 0 && shape.head_dim > 0);
  kernels::shape dims{shape.num_blocks, shape.block_size, shape.num_kv_heads, shape.head_dim};
  for (int64_t l = 0; l < shape.num_layers; ++l) {
    keys_.push_back(be.alloc_zeroed(dims));
    values_.push_back(be.alloc_zeroed(dims));
  }
  free_.reserve(static_cast<size_t>(shape.num_blocks));
  for (int64_t b = shape.num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
  in_use_.assign(static_cast<size_t>(shape.num_blocks), false);
}

std::optional<int32_t> kv_cache::allocate_block() {
  if (free_.empty()) return std::nullopt;
  int32_t b = free_.back();
  free_.pop_back();
  in_use_[static_cast<size_t>(b)] = true;
  return b;
}

void kv_cache::free_block(int32_t block) {
  TROUPE_CHECK(block >= 0 && block < shape_.num_blocks && in_use_[static_cast<size_t>(block)]);
  in_use_[static_cast<size_t>(block)] = false;
  free_.push_back(block);
}

size_t kv_cache::nbytes() const {
  size_t n = 0;
  for (const auto& t : keys_) n += t.nbytes();
  for (const auto& t : values_) n += t.nbytes();
  return n;
}

}  // namespace troupe::engine
