// Test helper: writes small safetensors files (valid or deliberately broken) into temp folders.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace troupe::testing {

/// A fresh temporary folder, removed at the end of the test.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() /
           ("troupe_st_" + std::to_string(rd()) + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path / name, std::ios::binary) << bytes;
  }
};

/// One tensor to write: its safetensors dtype name, shape and raw little-endian bytes.
struct st_tensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

/// The raw bytes of float32 values.
inline std::string f32_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

/// The raw bytes of 16-bit values (f16 or bf16 bit patterns).
inline std::string u16_bytes(const std::vector<uint16_t>& v) {
  std::string s(v.size() * 2, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

/// A safetensors file: 8-byte little-endian header length (DECLARED_LEN when given), header, data.
inline std::string safetensors_file(const std::string& header, const std::string& data,
                                    int64_t declared_len = -1) {
  uint64_t n = declared_len < 0 ? header.size() : uint64_t(declared_len);
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((n >> (8 * i)) & 0xff);
  return s + header + data;
}

/// A valid safetensors file holding TENSORS back to back, with a __metadata__ entry.
inline std::string safetensors_file(const std::vector<st_tensor>& tensors) {
  std::string header = R"({"__metadata__": {"format": "pt"})", data;
  for (const st_tensor& t : tensors) {
    header += ", \"" + t.name + "\": {\"dtype\": \"" + t.dtype + "\", \"shape\": [";
    for (size_t i = 0; i < t.shape.size(); ++i)
      header += (i ? ", " : "") + std::to_string(t.shape[i]);
    header += "], \"data_offsets\": [" + std::to_string(data.size()) + ", " +
              std::to_string(data.size() + t.bytes.size()) + "]}";
    data += t.bytes;
  }
  header += "}";
  while ((8 + header.size()) % 8 != 0) header += ' ';  // as the safetensors library pads
  return safetensors_file(header, data);
}

/// A float32 tensor of this shape filled with 0, 1, 2, ...
inline st_tensor iota_f32(const std::string& name, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = float(i);
  return {name, "F32", std::move(shape), f32_bytes(v)};
}

}  // namespace troupe::testing
