// Paged key/value memory for every layer, in a backend, with the simplest block allocator.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kernels/backend.hpp"

namespace troupe::engine {

/// Sizes of a paged KV cache.
struct kv_cache_shape {
  int64_t num_layers = 0;
  int64_t num_blocks = 0;
  int64_t block_size = 16;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
};

/// Per layer, K and V tensors of [num_blocks, block_size, num_kv_heads, head_dim] in the backend,
/// and a free list of block ids. The allocator is deliberately small: the block pool with prefix
/// caching (reference counts, hashes) replaces it.
class kv_cache {
 public:
  kv_cache(kernels::backend& be, const kv_cache_shape& shape);

  const kv_cache_shape& shape() const { return shape_; }
  int64_t block_size() const { return shape_.block_size; }
  int64_t num_blocks() const { return shape_.num_blocks; }
  kernels::tensor& keys(int64_t layer) { return keys_[static_cast<size_t>(layer)]; }
  kernels::tensor& values(int64_t layer) { return values_[static_cast<size_t>(layer)]; }

  /// A free block id, or nothing when every block is in use.
  std::optional<int32_t> allocate_block();
  /// Returns a block obtained from allocate_block.
  void free_block(int32_t block);
  int64_t num_free_blocks() const { return static_cast<int64_t>(free_.size()); }
  /// Bytes of K and V memory over all layers.
  size_t nbytes() const;
  /// A number no other cache of this process has (graphs recorded on one cache check it).
  uint64_t serial() const { return serial_; }

 private:
  kv_cache_shape shape_;
  std::vector<kernels::tensor> keys_;
  std::vector<kernels::tensor> values_;
  std::vector<int32_t> free_;      // a stack: lowest ids are handed out first
  std::vector<bool> in_use_;
  uint64_t serial_;
};

}  // namespace troupe::engine
