// Opens a model folder's safetensors (single file or index + shards) and looks tensors up.
#include "engine/model/weight_store.hpp"

#include <algorithm>
#include <utility>

#include <simdjson.h>

namespace troupe::engine {
namespace {

namespace fs = std::filesystem;

/// A shard name from an index must stay inside the model folder.
bool plain_file_name(std::string_view s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string_view::npos &&
         s.find('\\') == std::string_view::npos && s.find('\0') == std::string_view::npos;
}

/// The weight_map of an index file: (tensor, shard file name) in file order.
expected<std::vector<std::pair<std::string, std::string>>> read_index(const fs::path& path) {
  simdjson::padded_string text;
  if (auto err = simdjson::padded_string::load(path.string()).get(text))
    return make_error(path, ": cannot read file (", simdjson::error_message(err), ")");
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(text).get(doc))
    return make_error(path, ": not valid JSON (", simdjson::error_message(err), ")");
  simdjson::dom::object map;
  if (doc["weight_map"].get(map))
    return make_error(path, ": field \"weight_map\" is missing or not an object");
  std::vector<std::pair<std::string, std::string>> entries;
  for (auto field : map) {
    std::string_view shard;
    if (field.value.get(shard))
      return make_error(path, ": field \"weight_map\": the entry of \"", field.key,
                        "\" is not a file name string");
    if (!plain_file_name(shard))
      return make_error(path, ": field \"weight_map\": shard \"", shard, "\" of tensor \"",
                        field.key, "\" is not a plain file name in the model folder");
    entries.emplace_back(std::string(field.key), std::string(shard));
  }
  if (entries.empty()) return make_error(path, ": field \"weight_map\" lists no tensors");
  return entries;
}

}  // namespace

expected<void> weight_store::add_file(const fs::path& path) {
  auto file = mapped_file::open(path);
  if (!file) return file.error();
  auto views = read_safetensors(**file);
  if (!views) return views.error();
  for (tensor_view& v : *views) {
    auto [it, fresh] = by_name_.emplace(v.name, tensors_.size());
    if (!fresh)
      return make_error(path, ": tensor \"", v.name, "\" is also in ", tensors_[it->second].file);
    tensors_.push_back(std::move(v));
  }
  files_.push_back(std::move(*file));
  return {};
}

expected<std::unique_ptr<weight_store>> weight_store::open(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return make_error(dir, ": not a model folder (no such directory)");
  std::unique_ptr<weight_store> store(new weight_store());
  store->dir_ = dir;
  fs::path single = dir / "model.safetensors";
  fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(single, ec)) {
    if (auto ok = store->add_file(single); !ok) return ok.error();
    return store;
  }
  if (!fs::exists(index, ec))
    return make_error(dir, ": no model.safetensors or model.safetensors.index.json in the folder");
  auto entries = read_index(index);
  if (!entries) return entries.error();
  std::vector<std::string> shards;  // each once, in the order the index first names them
  for (const auto& [tensor, shard] : *entries)
    if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
  for (const std::string& shard : shards) {
    if (!fs::exists(dir / shard, ec))
      return make_error(index, ": shard \"", shard, "\" named in weight_map does not exist (",
                        dir / shard, ")");
    if (auto ok = store->add_file(dir / shard); !ok) return ok.error();
  }
  for (const auto& [tensor, shard] : *entries) {
    const tensor_view* v = store->find(tensor);
    if (!v || v->file != dir / shard)
      return make_error(dir / shard, ": tensor \"", tensor, "\" listed in ", index,
                        " is missing from this shard");
  }
  return store;
}

const tensor_view* weight_store::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

expected<const tensor_view*> weight_store::get(std::string_view name,
                                               std::vector<int64_t> shape) const {
  const tensor_view* v = find(name);
  if (!v)
    return make_error(dir_, ": tensor \"", name, "\" (expected shape ", shape_to_string(shape),
                      ") is missing from the model's safetensors files");
  if (v->shape != shape)
    return make_error(v->file, ": tensor \"", name, "\" has shape ", shape_to_string(v->shape),
                      ", expected ", shape_to_string(shape));
  return v;
}

}  // namespace troupe::engine
