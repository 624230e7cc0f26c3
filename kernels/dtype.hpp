// Element types of tensors (weights and activations) and conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace troupe::kernels {

enum class dtype { f32, f16, bf16 };

constexpr size_t dtype_size(dtype t) { return t == dtype::f32 ? 4 : 2; }

constexpr std::string_view to_string(dtype t) {
  switch (t) {
    case dtype::f32: return "F32";
    case dtype::f16: return "F16";
    case dtype::bf16: return "BF16";
  }
  return "?";
}

inline float bf16_to_float(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// Round-to-nearest-even, as PyTorch does; NaN stays NaN.
inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

inline float f16_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400u) == 0);
      bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// Converts n elements of type t at src to float32.
inline void to_float(dtype t, const void* src, float* dst, size_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  switch (t) {
    case dtype::f32: std::memcpy(dst, src, n * 4); break;
    case dtype::bf16: for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_float(h[i]); break;
    case dtype::f16: for (size_t i = 0; i < n; ++i) dst[i] = f16_to_float(h[i]); break;
  }
}

}  // namespace troupe::kernels
