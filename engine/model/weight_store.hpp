// The tensors of a Hugging Face model folder (model.safetensors or its shards), memory-mapped.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/error.hpp"
#include "engine/model/safetensors.hpp"

namespace troupe::engine {

/// Owns the mappings of a model's safetensors files (each mapped once) and the views into them.
/// Non-copyable; views and their data stay valid while the store lives.
class weight_store {
 public:
  /// Opens DIR/model.safetensors or the shards named by DIR/model.safetensors.index.json.
  static expected<std::unique_ptr<weight_store>> open(const std::filesystem::path& dir);

  weight_store(const weight_store&) = delete;
  weight_store& operator=(const weight_store&) = delete;

  /// The tensor of this name, or nullptr when absent.
  const tensor_view* find(std::string_view name) const;

  /// The tensor with exactly this shape; the error names file, tensor, expected and found shape.
  expected<const tensor_view*> get(std::string_view name, std::vector<int64_t> shape) const;

  /// Every tensor, in file order (shards in the order the index first names them).
  const std::vector<tensor_view>& tensors() const { return tensors_; }

  /// The model folder.
  const std::filesystem::path& dir() const { return dir_; }

  /// The mapped files, each once.
  size_t file_count() const { return files_.size(); }

 private:
  weight_store() = default;
  expected<void> add_file(const std::filesystem::path& path);

  std::filesystem::path dir_;
  std::vector<std::unique_ptr<mapped_file>> files_;
  std::vector<tensor_view> tensors_;
  std::map<std::string, size_t, std::less<>> by_name_;
};

}  // namespace troupe::engine
