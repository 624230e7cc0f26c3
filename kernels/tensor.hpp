// Small tensor handles that a backend hands out: a (device) pointer, an element type and a shape.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>

#include "config/error.hpp"
#include "kernels/dtype.hpp"

namespace troupe::kernels {

/// Up to four dimensions, outermost first, row-major and contiguous.
class shape {
 public:
  shape() = default;
  shape(std::initializer_list<int64_t> dims) {
    TROUPE_CHECK(dims.size() <= dims_.size());
    for (int64_t d : dims) dims_[rank_++] = d;
  }

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<size_t>(i)];
    return n;
  }
  /// Elements per outermost index (1 for a rank-1 shape).
  int64_t row_size() const { return rank_ == 0 ? 1 : numel() / dims_[0]; }
  int64_t rows() const { return rank_ == 0 ? 1 : dims_[0]; }
  bool operator==(const shape& o) const {
    if (rank_ != o.rank_) return false;
    for (int i = 0; i < rank_; ++i)
      if (dims_[static_cast<size_t>(i)] != o.dims_[static_cast<size_t>(i)]) return false;
    return true;
  }

 private:
  std::array<int64_t, 4> dims_{};
  int rank_ = 0;
};

/// A buffer of floating-point elements in a backend's memory (host memory for the CPU backend).
/// `owner` keeps the memory alive; it is empty for borrowed memory (e.g. memory-mapped weights,
/// which the model keeps alive itself). Copies share the memory.
struct tensor {
  std::shared_ptr<void> owner;
  void* data = nullptr;
  dtype type = dtype::f32;
  kernels::shape dims;

  int64_t numel() const { return dims.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(type); }
  bool empty() const { return data == nullptr; }
  template <class T>
  T* as() const { return static_cast<T*>(data); }
  /// Rows [first, first + count) of the outermost dimension, sharing memory.
  tensor rows(int64_t first, int64_t count) const;
};

/// A buffer of int32 indices (token ids, positions, slots, block tables) in a backend's memory.
struct index_tensor {
  std::shared_ptr<void> owner;
  int32_t* data = nullptr;
  kernels::shape dims;

  int64_t numel() const { return dims.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * sizeof(int32_t); }
};

inline tensor tensor::rows(int64_t first, int64_t count) const {
  TROUPE_CHECK(dims.rank() >= 1 && first >= 0 && count >= 0 && first + count <= dims[0]);
  tensor t = *this;
  auto* base = static_cast<std::byte*>(data);
  t.data = base + static_cast<size_t>(first * dims.row_size()) * dtype_size(type);
  switch (dims.rank()) {
    case 1: t.dims = {count}; break;
    case 2: t.dims = {count, dims[1]}; break;
    case 3: t.dims = {count, dims[1], dims[2]}; break;
    default: t.dims = {count, dims[1], dims[2], dims[3]}; break;
  }
  return t;
}

}  // namespace troupe::kernels
