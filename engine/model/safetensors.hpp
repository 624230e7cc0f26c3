// One safetensors file: a read-only memory mapping and the bounds-checked tensor views into it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "config/error.hpp"
#include "kernels/dtype.hpp"

namespace troupe::engine {

/// A tensor inside a mapped safetensors file. `data` points into the mapping (row-major, as
/// written); it is valid while the owning weight_store (or mapped_file) lives. The data is
/// aligned to the element size in files written by the safetensors library, but a hand-made file
/// may break that: read through memcpy or kernels::to_float when in doubt.
struct tensor_view {
  std::string name;
  kernels::dtype type = kernels::dtype::f32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t nbytes = 0;
  std::filesystem::path file;

  /// The number of elements (the product of the shape; 1 for a scalar).
  int64_t numel() const;
};

/// A read-only memory mapping of a whole file, unmapped on destruction; non-copyable.
class mapped_file {
 public:
  /// Maps PATH; an empty file maps to no bytes.
  static expected<std::unique_ptr<mapped_file>> open(const std::filesystem::path& path);
  ~mapped_file();
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  mapped_file() = default;
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

/// Parses FILE's header (8-byte little-endian length, then JSON) and returns one view per
/// tensor, in header order. Every offset, size and shape is checked against the file; a
/// problem gives an error naming the file, the tensor and what is wrong.
expected<std::vector<tensor_view>> read_safetensors(const mapped_file& file);

/// "[4, 8]": a shape as the error messages print it.
std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace troupe::engine
